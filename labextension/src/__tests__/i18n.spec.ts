import { chooseLanguage, EN, JA, makeTranslate } from '../i18n';

describe('labels', () => {
  it('picks Japanese for ja and its regional codes, English otherwise', () => {
    expect(chooseLanguage('ja_JP')).toBe('ja');
    expect(chooseLanguage('ja-JP')).toBe('ja');
    expect(chooseLanguage('JA')).toBe('ja');
    expect(chooseLanguage('en')).toBe('en');
    expect(chooseLanguage('en_US', 'ja')).toBe('en');
    expect(chooseLanguage('fr_FR')).toBe('en');
    expect(chooseLanguage('jav')).toBe('en');
  });

  it('falls back to the page language when the translator has none', () => {
    expect(chooseLanguage('', 'ja')).toBe('ja');
    expect(chooseLanguage(null, 'en-GB')).toBe('en');
    expect(chooseLanguage(undefined, undefined)).toBe('en');
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
