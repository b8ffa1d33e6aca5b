import type { NotebookContext } from '../api';
import { makeTranslate } from '../i18n';
import {
  chosenRepository,
  datasetAreas,
  dirtyFromConflict,
  dirtyLines,
  formatSize,
  formatTimeLeft,
  isLogFile,
  jobRow,
  parseDataSearch,
  parseTags,
  secondsLeftNow,
  splitImage,
  statusClass,
  trainBody,
  trainDefaults,
  transferPercent,
  uploadablePaths,
  validateTrainForm
} from '../model';

const en = makeTranslate('en');
const ja = makeTranslate('ja');

const context: NotebookContext = {
  tenantId: 3,
  tenantName: 'team',
  user: 'alice',
  notebookId: 17,
  datasetId: 5,
  trainingIds: [8, 9],
  inferenceIds: [],
  image: 'registry.local:5000/kqi/python:3.11',
  expiresAt: '2026-12-01T05:00:00Z',
  secondsLeft: 3725,
  git: [
    {
      path: '/kqi/git',
      url: 'http://127.0.0.1:9/team/mnist.git',
      branch: 'master',
      commit: '0123456789abcdef0123',
      dirty: ['train.py', 'notes/a.md']
    }
  ],
  kqiServer: 'http://127.0.0.1:8000/services/kqi/'
};

describe('data search', () => {
  it('splits a search into a name and tags', () => {
    expect(parseDataSearch('')).toEqual({});
    expect(parseDataSearch('  cats ')).toEqual({ name: 'cats' });
    expect(parseDataSearch('cats tag:train #2026')).toEqual({ name: 'cats', tag: ['train', '2026'] });
    expect(parseDataSearch('TAG:x big cats')).toEqual({ name: 'big cats', tag: ['x'] });
  });

  it('reads tags of the register form', () => {
    expect(parseTags(' a, b ,,a、c ')).toEqual(['a', 'b', 'c']);
    expect(parseTags('')).toEqual([]);
  });

  it('uploads the selected files, not folders', () => {
    expect(
      uploadablePaths([
        { path: 'x/a.csv', type: 'file' },
        { path: 'x/sub', type: 'directory' },
        { path: 'x/n.ipynb', type: 'notebook' }
      ])
    ).toEqual(['x/a.csv', 'x/n.ipynb']);
  });
});

describe('dataset areas', () => {
  const d = (id: number) => ({ id, name: `d${id}`, tags: [] });
  it('lists the areas in the guide order, then others', () => {
    const areas = datasetAreas({ isFlat: false, flatEntries: [], entries: { validation: [d(3)], extra: [], training: [d(1), d(2)], testing: [] } }, 'Flat');
    expect(areas.map(a => a.area)).toEqual(['training', 'testing', 'validation', 'extra']);
    expect(areas[0].items.map(x => x.id)).toEqual([1, 2]);
  });
  it('shows a flat dataset as one area', () => {
    expect(datasetAreas({ isFlat: true, flatEntries: [d(4)], entries: {} }, 'Flat')).toEqual([{ area: 'Flat', items: [d(4)] }]);
  });
});

describe('job rows', () => {
  it('names the queue position and reason of a queued job only', () => {
    const queued = jobRow({ id: 4, name: 'fit', status: 'Queued', queuePosition: 2, waitReason: 'tenant quota: cpu' }, en);
    expect(queued).toEqual({ id: 4, label: '4:fit', status: 'Queued', statusClass: 'kqi-status-waiting', queue: 'Queue position 2 · Waiting: tenant quota: cpu' });
    expect(jobRow({ id: 4, name: 'fit', status: 'Queued', queuePosition: 1 }, ja).queue).toBe('待ち順 1');
    expect(jobRow({ id: 5, name: 'fit', status: 'Running', queuePosition: 3 }, en).queue).toBeNull();
  });
  it('groups statuses', () => {
    expect(statusClass('Completed')).toBe('kqi-status-ok');
    expect(statusClass('Killed')).toBe('kqi-status-bad');
    expect(statusClass('Running')).toBe('kqi-status-running');
    expect(statusClass('Pending')).toBe('kqi-status-waiting');
  });
  it('knows the stored log file', () => {
    expect(isLogFile('training_12_stdout_stderr_1.log')).toBe(true);
    expect(isLogFile('output.zip')).toBe(false);
  });
});

describe('transfers and sizes', () => {
  it('computes the progress', () => {
    expect(transferPercent({ state: 'running', bytesDone: 0, bytesTotal: 0 })).toBe(0);
    expect(transferPercent({ state: 'running', bytesDone: 512, bytesTotal: 1024 })).toBe(50);
    expect(transferPercent({ state: 'running', bytesDone: 2000, bytesTotal: 1024 })).toBe(100);
    expect(transferPercent({ state: 'done', bytesDone: 0, bytesTotal: 0 })).toBe(100);
  });
  it('formats sizes', () => {
    expect(formatSize(0)).toBe('0 B');
    expect(formatSize(1536)).toBe('1.5 KB');
    expect(formatSize(12 * 1024 * 1024)).toBe('12 MB');
    expect(formatSize(-1)).toBe('-');
  });
});

describe('the notebook facts', () => {
  it('formats the time left', () => {
    expect(formatTimeLeft(null, en)).toBe('No lifetime');
    expect(formatTimeLeft(0, en)).toBe('Ended');
    expect(formatTimeLeft(3725, en)).toBe('1 h 2 min');
    expect(formatTimeLeft(250, en)).toBe('4 min 10 s');
    expect(formatTimeLeft(3725, ja)).toBe('1 時間 2 分');
  });
  it('counts the time left down from when the context was read', () => {
    expect(secondsLeftNow(context, 1000, 1000 + 25_500)).toBe(3700);
    expect(secondsLeftNow(context, 0, 10_000_000)).toBe(0);
    expect(secondsLeftNow({ secondsLeft: null }, 0, 5)).toBeNull();
  });
});

describe('train from here', () => {
  it('prefills from the notebook context', () => {
    const form = trainDefaults(context);
    expect(form).toMatchObject({ name: 'mnist-from-notebook-17', image: 'registry.local:5000/kqi/python', tag: '3.11', dataSetId: '5', entryPoint: '' });
    expect(trainDefaults(null).name).toBe('training-from-notebook');
  });
  it('splits images at the tag, not at a registry port', () => {
    expect(splitImage('python:3.11')).toEqual({ image: 'python', tag: '3.11' });
    expect(splitImage('registry.local:5000/kqi/python')).toEqual({ image: 'registry.local:5000/kqi/python', tag: 'latest' });
    expect(splitImage('')).toEqual({ image: '', tag: '' });
  });
  it('validates and builds the body', () => {
    const form = { ...trainDefaults(context), entryPoint: 'python train.py', memo: ' ' };
    expect(validateTrainForm({ ...form, name: ' ', entryPoint: '' })).toEqual({ name: 'train.name_required', entryPoint: 'train.entry_required' });
    expect(validateTrainForm(form)).toEqual({});
    expect(trainBody(form, false)).toEqual({
      name: 'mnist-from-notebook-17',
      entryPoint: 'python train.py',
      cpu: 1,
      memory: 1,
      gpu: 0,
      zip: false,
      allowDirty: false,
      repositoryPath: '/kqi/git',
      containerImage: { image: 'registry.local:5000/kqi/python', tag: '3.11' },
      dataSetId: 5
    });
    const bare = trainBody({ ...form, image: '', dataSetId: '' }, true);
    expect(bare.allowDirty).toBe(true);
    expect('containerImage' in bare || 'dataSetId' in bare).toBe(false);
  });
  it('names the uncommitted changes', () => {
    const lines = dirtyLines(context.git, en);
    expect(lines).toEqual([
      {
        title: 'Uncommitted changes in /kqi/git: the training runs the committed code (0123456789), without them:',
        files: ['train.py', 'notes/a.md'],
        more: null
      }
    ]);
    const many = dirtyLines([{ ...context.git[0], dirty: Array.from({ length: 13 }, (_, i) => `f${i}`) }], ja, 10);
    expect(many[0].files).toHaveLength(10);
    expect(many[0].more).toBe('… ほか 3 件');
    expect(dirtyLines([{ ...context.git[0], dirty: [] }], en)).toEqual([]);
  });
  it('reads the dirty files of a 409', () => {
    const facts = dirtyFromConflict({ message: 'uncommitted changes', dirty: ['a.py'] }, context.git[0]);
    expect(facts).toEqual([{ ...context.git[0], dirty: ['a.py'] }]);
    expect(dirtyFromConflict({ dirty: ['b'], path: '/kqi/output/other' }, context.git[0])[0]).toMatchObject({ path: '/kqi/output/other', dirty: ['b'] });
    expect(dirtyFromConflict({}, null)[0]).toMatchObject({ path: '/kqi/git', dirty: [] });
  });

  it('picks the repository the form names, else the first', () => {
    const two: NotebookContext = { ...context, git: [context.git[0], { ...context.git[0], path: '/kqi/output/work', dirty: [] }] };
    expect(chosenRepository(two, '/kqi/output/work')!.path).toBe('/kqi/output/work');
    expect(chosenRepository(two, '/gone')!.path).toBe('/kqi/git');
    expect(chosenRepository({ ...context, git: [] }, '')).toBeNull();
    expect(chosenRepository(null, '')).toBeNull();
  });
});
