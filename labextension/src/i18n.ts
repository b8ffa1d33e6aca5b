/**
 * English and Japanese labels of the KQI panels, like the web UI's (kqi_services/ui/i18n*.py).
 *
 * JupyterLab's language packs are not installed, so the translator cannot translate our
 * strings: we keep our two tables and pick one from the translator's language code (or,
 * without one, the page's lang attribute).
 */

export type Lang = 'en' | 'ja';

export type Labels = Record<string, string>;

export const EN: Labels = {
  'kqi.sidebar': 'KQI',
  'kqi.sidebar_caption': 'KQI Hub: data, datasets, trainings and inferences of this tenant',
  'kqi.refresh': 'Refresh',
  'kqi.loading': 'Loading…',
  'kqi.error': 'Error: {message}',
  'kqi.error_status': 'The server answered {status}.',
  'kqi.close': 'Close',
  'kqi.none': '-',
  'kqi.previous': 'Previous',
  'kqi.next': 'Next',
  'kqi.page_of': 'Page {page} of {pages} ({total} items)',

  'tab.data': 'Data',
  'tab.datasets': 'Datasets',
  'tab.training': 'Trainings',
  'tab.inference': 'Inferences',
  'tab.train': 'Train from here',
  'tab.notebook': 'This notebook',

  'data.search': 'Search by name or tag:',
  'data.search_placeholder': 'name, or tag:value',
  'data.search_button': 'Search',
  'data.empty': 'No data.',
  'data.files': 'Files',
  'data.no_files': 'This data has no files.',
  'data.download': 'Download here',
  'data.download_title': 'Download the files into the file browser\'s current folder',
  'data.downloaded': '{count} file(s) of {id}:{name} downloaded into {path}.',
  'data.downloading': 'Downloading {id}:{name} into {path}…',
  'data.register': 'Register selection as data',
  'data.register_title': 'Make a new data from the files selected in the file browser',
  'data.register_none': 'Select files in the file browser first.',
  'data.register_name': 'Name',
  'data.register_memo': 'Memo',
  'data.register_tags': 'Tags (comma separated)',
  'data.register_submit': 'Register',
  'data.register_cancel': 'Cancel',
  'data.register_selected': 'Selected: {paths}',
  'data.registering': 'Uploading: {done} of {total}',
  'data.registered': 'Registered as data {id}.',
  'data.register_failed': 'The upload failed: {message}',
  'data.tags': 'Tags',
  'data.name_required': 'A name is required.',

  'datasets.empty': 'No datasets.',
  'datasets.locked': 'Locked',
  'datasets.unlocked': 'Editable',
  'datasets.lock_reasons': 'Locked because: {reasons}',
  'datasets.area': '{area} ({count})',
  'datasets.flat': 'Flat',
  'datasets.no_entries': 'No data in this area.',

  'jobs.empty': 'No jobs.',
  'jobs.status': 'Status',
  'jobs.queue_position': 'Queue position {position}',
  'jobs.waiting_because': 'Waiting: {reason}',
  'jobs.log': 'Log',
  'jobs.log_title': 'Log of {kind} {id}:{name}',
  'jobs.halt': 'Halt',
  'jobs.halt_confirm': 'Halt {kind} {id}:{name}?',
  'jobs.halted': '{kind} {id} is halting.',
  'jobs.output': 'Output',
  'jobs.output_files': 'Stored files of {id}:{name}',
  'jobs.no_output': 'No stored files yet.',
  'jobs.tensorboard': 'TensorBoard',
  'jobs.tensorboard_starting': 'TensorBoard of {id} is starting; it opens when it is ready.',
  'jobs.log_following': 'Following the log…',
  'jobs.log_ended': 'The job has ended; this is the whole log.',
  'jobs.log_empty': '(no output yet)',
  'jobs.log_reconnecting': 'The connection dropped; reconnecting…',
  'jobs.log_failed': 'The log cannot be read: {message}',
  'jobs.training': 'training',
  'jobs.inference': 'inference',
  'jobs.job_id': 'Job id',

  'train.name': 'Name',
  'train.memo': 'Memo',
  'train.entry_point': 'Command (run in /kqi/git)',
  'train.image': 'Image',
  'train.tag': 'Tag',
  'train.dataset': 'Dataset id',
  'train.repository': 'Repository',
  'train.branch': 'Branch',
  'train.commit': 'Commit',
  'train.repo_none': 'No git repository under /kqi/git: the training runs without one.',
  'train.cpu': 'CPU',
  'train.memory': 'Memory (GiB)',
  'train.gpu': 'GPU',
  'train.zip': 'Zip the output',
  'train.submit': 'Submit training',
  'train.submit_anyway': 'Submit anyway',
  'train.dirty': 'Uncommitted changes in {path}: the training runs the committed code ({commit}), without them:',
  'train.dirty_more': '… and {count} more',
  'train.submitted': 'Training {id}:{name} submitted.',
  'train.name_required': 'A name is required.',
  'train.entry_required': 'A command is required.',

  'nb.tenant': 'Tenant',
  'nb.user': 'User',
  'nb.notebook': 'Notebook',
  'nb.dataset': 'Dataset',
  'nb.trainings': 'Mounted trainings',
  'nb.inferences': 'Mounted inferences',
  'nb.image': 'Image',
  'nb.time_left': 'Time left',
  'nb.unlimited': 'No lifetime',
  'nb.expired': 'Ended',
  'nb.git': 'Repository',
  'nb.git_dirty': '{count} uncommitted change(s)',
  'nb.git_clean': 'no uncommitted changes',
  'nb.hours_minutes': '{h} h {m} min',
  'nb.minutes_seconds': '{m} min {s} s',

  'cmd.open': 'Open the KQI sidebar',
  'cmd.refresh': 'Refresh the KQI lists',
  'cmd.data': 'Show data',
  'cmd.datasets': 'Show datasets',
  'cmd.trainings': 'Show trainings',
  'cmd.inferences': 'Show inferences',
  'cmd.register': 'Register the selected files as data',
  'cmd.download': 'Download a data into the current folder',
  'cmd.download_prompt': 'Id of the data to download',
  'cmd.train': 'Train from here',
  'cmd.log': 'Open a training\'s log',
  'cmd.log_prompt': 'Id of the training',
  'cmd.halt': 'Halt a training',
  'cmd.tensorboard': 'Open a training\'s TensorBoard',
  'cmd.notebook': 'Show this notebook\'s facts'
};

export const JA: Labels = {
  'kqi.sidebar': 'KQI',
  'kqi.sidebar_caption': 'KQI Hub: このテナントのデータ、データセット、学習、推論',
  'kqi.refresh': '更新',
  'kqi.loading': '読み込み中…',
  'kqi.error': 'エラー: {message}',
  'kqi.error_status': 'サーバーの応答: {status}',
  'kqi.close': '閉じる',
  'kqi.none': '-',
  'kqi.previous': '前へ',
  'kqi.next': '次へ',
  'kqi.page_of': '{page} / {pages} ページ（{total} 件）',

  'tab.data': 'データ',
  'tab.datasets': 'データセット',
  'tab.training': '学習',
  'tab.inference': '推論',
  'tab.train': 'ここから学習',
  'tab.notebook': 'このノートブック',

  'data.search': '名前またはタグで検索:',
  'data.search_placeholder': '名前、または tag:値',
  'data.search_button': '検索',
  'data.empty': 'データがありません。',
  'data.files': 'ファイル',
  'data.no_files': 'このデータにはファイルがありません。',
  'data.download': 'ここにダウンロード',
  'data.download_title': 'ファイルブラウザーの現在のフォルダーにファイルをダウンロードします',
  'data.downloaded': '{id}:{name} のファイル {count} 件を {path} にダウンロードしました。',
  'data.downloading': '{id}:{name} を {path} にダウンロード中…',
  'data.register': '選択したファイルをデータ登録',
  'data.register_title': 'ファイルブラウザーで選択したファイルから新しいデータを作ります',
  'data.register_none': '先にファイルブラウザーでファイルを選択してください。',
  'data.register_name': '名前',
  'data.register_memo': 'メモ',
  'data.register_tags': 'タグ（カンマ区切り）',
  'data.register_submit': '登録',
  'data.register_cancel': 'キャンセル',
  'data.register_selected': '選択: {paths}',
  'data.registering': 'アップロード中: {done} / {total}',
  'data.registered': 'データ {id} として登録しました。',
  'data.register_failed': 'アップロードに失敗しました: {message}',
  'data.tags': 'タグ',
  'data.name_required': '名前は必須です。',

  'datasets.empty': 'データセットがありません。',
  'datasets.locked': 'ロック中',
  'datasets.unlocked': '編集可',
  'datasets.lock_reasons': 'ロックの理由: {reasons}',
  'datasets.area': '{area}（{count}）',
  'datasets.flat': 'フラット',
  'datasets.no_entries': 'この領域にデータはありません。',

  'jobs.empty': 'ジョブがありません。',
  'jobs.status': 'ステータス',
  'jobs.queue_position': '待ち順 {position}',
  'jobs.waiting_because': '待機理由: {reason}',
  'jobs.log': 'ログ',
  'jobs.log_title': '{kind} {id}:{name} のログ',
  'jobs.halt': '停止',
  'jobs.halt_confirm': '{kind} {id}:{name} を停止しますか?',
  'jobs.halted': '{kind} {id} を停止しています。',
  'jobs.output': '出力',
  'jobs.output_files': '{id}:{name} の保存ファイル',
  'jobs.no_output': '保存されたファイルはまだありません。',
  'jobs.tensorboard': 'TensorBoard',
  'jobs.tensorboard_starting': '{id} の TensorBoard を起動中です。準備ができたら開きます。',
  'jobs.log_following': 'ログを追跡中…',
  'jobs.log_ended': 'ジョブは終了しました。ログはこれですべてです。',
  'jobs.log_empty': '（まだ出力はありません）',
  'jobs.log_reconnecting': '接続が切れました。再接続しています…',
  'jobs.log_failed': 'ログを読めません: {message}',
  'jobs.training': '学習',
  'jobs.inference': '推論',
  'jobs.job_id': 'ジョブ ID',

  'train.name': '名前',
  'train.memo': 'メモ',
  'train.entry_point': '実行コマンド（/kqi/git で実行）',
  'train.image': 'イメージ',
  'train.tag': 'タグ',
  'train.dataset': 'データセット ID',
  'train.repository': 'リポジトリ',
  'train.branch': 'ブランチ',
  'train.commit': 'コミット',
  'train.repo_none': '/kqi/git に git リポジトリがありません。リポジトリなしで学習します。',
  'train.cpu': 'CPU',
  'train.memory': 'メモリ (GiB)',
  'train.gpu': 'GPU',
  'train.zip': '出力を zip にする',
  'train.submit': '学習を実行',
  'train.submit_anyway': 'このまま実行',
  'train.dirty': '{path} にコミットされていない変更があります。学習はコミット済みのコード（{commit}）で実行され、次の変更は含まれません:',
  'train.dirty_more': '… ほか {count} 件',
  'train.submitted': '学習 {id}:{name} を実行しました。',
  'train.name_required': '名前は必須です。',
  'train.entry_required': '実行コマンドは必須です。',

  'nb.tenant': 'テナント',
  'nb.user': 'ユーザー',
  'nb.notebook': 'ノートブック',
  'nb.dataset': 'データセット',
  'nb.trainings': 'マウントした学習',
  'nb.inferences': 'マウントした推論',
  'nb.image': 'イメージ',
  'nb.time_left': '残り時間',
  'nb.unlimited': '起動期間なし',
  'nb.expired': '終了',
  'nb.git': 'リポジトリ',
  'nb.git_dirty': 'コミットされていない変更 {count} 件',
  'nb.git_clean': 'コミットされていない変更なし',
  'nb.hours_minutes': '{h} 時間 {m} 分',
  'nb.minutes_seconds': '{m} 分 {s} 秒',

  'cmd.open': 'KQI サイドバーを開く',
  'cmd.refresh': 'KQI の一覧を更新',
  'cmd.data': 'データを表示',
  'cmd.datasets': 'データセットを表示',
  'cmd.trainings': '学習を表示',
  'cmd.inferences': '推論を表示',
  'cmd.register': '選択したファイルをデータ登録',
  'cmd.download': 'データを現在のフォルダーにダウンロード',
  'cmd.download_prompt': 'ダウンロードするデータの ID',
  'cmd.train': 'ここから学習',
  'cmd.log': '学習のログを開く',
  'cmd.log_prompt': '学習の ID',
  'cmd.halt': '学習を停止',
  'cmd.tensorboard': '学習の TensorBoard を開く',
  'cmd.notebook': 'このノートブックの情報を表示'
};

const JA_CODE = /^ja([-_]|$)/i;
const EN_CODE = /^en([-_]|$)/i;

/**
 * The language of our labels. JupyterLab's own choice wins when it names one (ja* → Japanese,
 * any other language → English, the nearest we have). Its default English (no language pack
 * chosen, the case here) says nothing about the user, so then the page's lang and, like the
 * web UI's Accept-Language, the browser's first language decide.
 */
export function chooseLanguage(
  languageCode?: string | null,
  documentLang?: string | null,
  browserLanguages?: ReadonlyArray<string> | null
): Lang {
  for (const candidate of [languageCode, documentLang]) {
    const code = (candidate || '').trim();
    if (JA_CODE.test(code)) {
      return 'ja';
    }
    if (code && !EN_CODE.test(code)) {
      return 'en';
    }
  }
  const first = (browserLanguages || []).find(code => !!code) || '';
  return JA_CODE.test(first.trim()) ? 'ja' : 'en';
}

export type Translate = (key: string, values?: Record<string, string | number>) => string;

/** A label lookup for a language; {name} placeholders take values; unknown keys fall back to English, then the key. */
export function makeTranslate(lang: Lang): Translate {
  const table = lang === 'ja' ? JA : EN;
  return (key, values) => {
    let text = Object.prototype.hasOwnProperty.call(table, key)
      ? table[key]
      : Object.prototype.hasOwnProperty.call(EN, key)
        ? EN[key]
        : key;
    if (values) {
      text = text.replace(/\{(\w+)\}/g, (whole, name: string) =>
        Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole
      );
    }
    return text;
  };
}
