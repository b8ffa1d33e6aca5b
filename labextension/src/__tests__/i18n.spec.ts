import { chooseLanguage, EN, JA, makeTranslate } from '../i18n';

describe('labels', () => {
  it('follows a language JupyterLab names', () => {
    expect(chooseLanguage('ja_JP')).toBe('ja');
    expect(chooseLanguage('ja-JP', null, ['en-US'])).toBe('ja');
    expect(chooseLanguage('JA')).toBe('ja');
    expect(chooseLanguage('fr_FR', null, ['ja'])).toBe('en');
    expect(chooseLanguage('jav', null, ['ja'])).toBe('en');
  });

  it("reads JupyterLab's default English as no choice: the page, then the browser decide", () => {
    expect(chooseLanguage('en', 'en', ['ja-JP', 'en'])).toBe('ja');
    expect(chooseLanguage('en_US', 'ja', [])).toBe('ja');
    expect(chooseLanguage('en', 'en', ['en-US', 'ja'])).toBe('en');
    expect(chooseLanguage('', '', ['', 'ja'])).toBe('ja');
    expect(chooseLanguage(null, undefined, undefined)).toBe('en');
  });

  it('has every English label in Japanese, and no label only in Japanese', () => {
    expect(Object.keys(JA).sort()).toEqual(Object.keys(EN).sort());
    for (const key of Object.keys(EN)) {
      expect(JA[key]).toBeTruthy();
    }
  });

  it('keeps the placeholders of each label in both languages', () => {
    const placeholders = (text: string) => (text.match(/\{\w+\}/g) || []).sort();
    for (const key of Object.keys(EN)) {
      expect([key, placeholders(JA[key])]).toEqual([key, placeholders(EN[key])]);
    }
  });

  it('fills placeholders and leaves unknown ones', () => {
    const en = makeTranslate('en');
    const ja = makeTranslate('ja');
    expect(en('data.registered', { id: 12 })).toBe('Registered as data 12.');
    expect(ja('data.registered', { id: 12 })).toBe('データ 12 として登録しました。');
    expect(en('jobs.queue_position', {})).toBe('Queue position {position}');
    expect(ja('tab.data')).toBe('データ');
    expect(en('no.such.key')).toBe('no.such.key');
  });
});
