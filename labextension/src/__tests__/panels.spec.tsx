/**
 * The panels rendered with React in jsdom against a real HTTP server that plays the server
 * extension: the dirty-repository prompt of "Train from here" and the data list with
 * "register as data" and its progress.
 */
import { ServerConnection } from '@jupyterlab/services';
import * as React from 'react';
import { createRoot, Root } from 'react-dom/client';

import { KqiClient, NotebookContext } from '../api';
import { makeTranslate } from '../i18n';
import { DataPanel, IKqiEnv, openTensorBoard, TabName, TrainPanel } from '../panels';
import { json, TestServer } from './server';

(globalThis as any).IS_REACT_ACT_ENVIRONMENT = true;

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const CONTEXT: NotebookContext = {
  tenantId: 3,
  tenantName: 'team',
  user: 'alice',
  notebookId: 17,
  datasetId: 5,
  trainingIds: [],
  inferenceIds: [],
  image: 'python:3.11',
  expiresAt: null,
  secondsLeft: null,
  git: [{ path: '/kqi/git', url: 'http://git.local/team/mnist.git', branch: 'master', commit: COMMIT, dirty: ['notes.txt'] }]
};

async function waitFor<T>(find: () => T | null | undefined | false, timeout = 5000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const found = find();
    if (found) {
      return found;
    }
    if (Date.now() - start > timeout) {
      throw new Error('timed out waiting');
    }
    await React.act(async () => {
      await new Promise(resolve => setTimeout(resolve, 20));
    });
  }
}

function type(input: HTMLInputElement, value: string): void {
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')!.set!;
  setter.call(input, value);
  input.dispatchEvent(new Event('input', { bubbles: true }));
}

async function click(element: Element): Promise<void> {
  await React.act(async () => {
    (element as HTMLElement).click();
  });
}

describe('panels', () => {
  const server = new TestServer();
  let node: HTMLDivElement;
  let root: Root;
  let shown: TabName[];
  let env: IKqiEnv;
  let selection: Array<{ path: string; type: string }>;

  beforeAll(() => server.start());
  afterAll(() => server.stop());
  beforeEach(() => {
    server.received.length = 0;
    shown = [];
    selection = [];
    node = document.createElement('div');
    document.body.appendChild(node);
    root = createRoot(node);
    env = {
      client: new KqiClient({ settings: ServerConnection.makeSettings({ baseUrl: server.base }) }),
      t: makeTranslate('en'),
      currentPath: () => 'work',
      selectedItems: () => selection,
      refreshBrowser: async () => undefined,
      openLog: () => undefined,
      openUrl: () => undefined,
      confirm: async () => true,
      showTab: tab => shown.push(tab)
    };
  });
  afterEach(async () => {
    await React.act(async () => root.unmount());
    node.remove();
  });

  it('names the uncommitted changes before submitting, and sends anyway only when asked', async () => {
    server.handler = (req, res) => {
      if (req.url.startsWith('/user/alice/kqi-7/kqi/context')) {
        return json(res, 200, CONTEXT);
      }
      const body = JSON.parse(req.body);
      if (!body.allowDirty) {
        return json(res, 409, { message: 'The repository /kqi/git has uncommitted changes.', dirty: ['new.py', 'notes.txt'] });
      }
      return json(res, 201, { id: 31, name: body.name, status: 'Queued' });
    };
    await React.act(async () => root.render(<TrainPanel env={env} refresh={0} />));
    await waitFor(() => node.querySelector('.kqi-train-commit')?.textContent === COMMIT.slice(0, 10));
    expect(node.querySelector('.kqi-train-branch')!.textContent).toBe('master');
    expect((node.querySelector('.kqi-train-name') as HTMLInputElement).value).toBe('mnist-from-notebook-17');
    expect((node.querySelector('.kqi-train-dataSetId') as HTMLInputElement).value).toBe('5');
    // named before anything is sent
    expect(node.querySelector('.kqi-dirty')!.textContent).toContain('notes.txt');

    // nothing is sent without a command
    await click(node.querySelector('.kqi-train-submit')!);
    expect(node.querySelector('.kqi-field-error')!.textContent).toBe('A command is required.');
    expect(server.received.filter(r => r.method === 'POST')).toHaveLength(0);

    await React.act(async () => type(node.querySelector('.kqi-train-entryPoint') as HTMLInputElement, 'python train.py'));
    await click(node.querySelector('.kqi-train-submit')!);
    const anyway = await waitFor(() => node.querySelector('.kqi-train-submit-anyway'));
    const files = Array.from(node.querySelectorAll('.kqi-dirty-files li')).map(li => li.textContent);
    expect(files).toEqual(['new.py', 'notes.txt']);
    const first = server.received.filter(r => r.method === 'POST');
    expect(first).toHaveLength(1);
    expect(first[0].url).toBe('/user/alice/kqi-7/kqi/train-from-here');
    expect(JSON.parse(first[0].body)).toMatchObject({ name: 'mnist-from-notebook-17', entryPoint: 'python train.py', allowDirty: false, dataSetId: 5, repositoryPath: '/kqi/git' });
    expect(shown).toEqual([]);

    await click(anyway);
    await waitFor(() => shown.length > 0);
    const posts = server.received.filter(r => r.method === 'POST');
    expect(posts).toHaveLength(2);
    expect(JSON.parse(posts[1].body).allowDirty).toBe(true);
    expect(shown).toEqual(['training']);
  });

  it('lists data with its total, and registers the selected files with a progress bar', async () => {
    let transferPolls = 0;
    server.handler = (req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname.endsWith('/kqi/api/v2/data')) {
        const items = [
          { id: 2, name: 'cats', tags: ['img'], memo: 'pictures' },
          { id: 1, name: 'dogs', tags: [] }
        ];
        return json(res, 200, items, { 'X-Total-Count': '45' });
      }
      if (url.pathname.endsWith('/kqi/data-register')) {
        return json(res, 202, { transferId: 'tr-9' });
      }
      if (url.pathname.endsWith('/kqi/transfers/tr-9')) {
        transferPolls += 1;
        return transferPolls < 2
          ? json(res, 200, { transferId: 'tr-9', state: 'running', bytesDone: 5, bytesTotal: 10, dataId: null, error: null })
          : json(res, 200, { transferId: 'tr-9', state: 'done', bytesDone: 10, bytesTotal: 10, dataId: 9, error: null });
      }
      json(res, 404, { message: 'no' });
    };
    await React.act(async () => root.render(<DataPanel env={env} refresh={0} registerRequest={0} />));
    await waitFor(() => node.querySelectorAll('.kqi-data').length === 2);
    expect(Array.from(node.querySelectorAll('.kqi-data-name')).map(b => b.textContent)).toEqual(['2:cats', '1:dogs']);
    expect(node.querySelector('.kqi-pager-text')!.textContent).toBe('Page 1 of 3 (45 items)');
    expect(server.received[0].url).toContain('/kqi/api/v2/data?perPage=20&page=1&withTotal=true');

    // a tag searches by that tag
    await click(node.querySelector('.kqi-tag')!);
    await waitFor(() => server.received.some(r => r.url.includes('data?tag=img&perPage=20&page=1')));

    // nothing selected: it says so
    await click(node.querySelector('.kqi-register')!);
    expect(node.querySelector('.kqi-message-error')!.textContent).toBe('Select files in the file browser first.');

    selection = [
      { path: 'work/a.csv', type: 'file' },
      { path: 'work/sub', type: 'directory' },
      { path: 'work/b.ipynb', type: 'notebook' }
    ];
    await click(node.querySelector('.kqi-register')!);
    expect(node.querySelector('.kqi-register-paths')!.textContent).toBe('Selected: work/a.csv, work/b.ipynb');
    await React.act(async () => {
      type(node.querySelector('.kqi-register-name') as HTMLInputElement, 'new data');
      type(node.querySelector('.kqi-register-tags') as HTMLInputElement, 'x, y');
    });
    const listsBefore = server.received.filter(r => r.url.includes('/kqi/api/v2/data?')).length;
    await click(node.querySelector('.kqi-register-submit')!);
    await waitFor(() => node.querySelector('.kqi-progress[data-state="running"]'));
    expect((node.querySelector('.kqi-register-progress') as HTMLProgressElement).value).toBe(50);
    await waitFor(() => node.querySelector('.kqi-register-form .kqi-message-success'), 5000);
    expect(node.querySelector('.kqi-register-form .kqi-message-success')!.textContent).toBe('Registered as data 9.');
    expect((node.querySelector('.kqi-register-progress') as HTMLProgressElement).value).toBe(100);
    expect(node.querySelector('.kqi-register-submit')).toBeNull();
    const post = server.received.find(r => r.url.endsWith('/kqi/data-register'))!;
    expect(JSON.parse(post.body)).toEqual({ name: 'new data', memo: '', tags: ['x', 'y'], paths: ['work/a.csv', 'work/b.ipynb'] });
    // the list is asked again and shows the new data
    await waitFor(() => server.received.filter(r => r.url.includes('/kqi/api/v2/data?')).length > listsBefore);
  });

  it('starts a TensorBoard that is not running and opens it once it answers', async () => {
    let gets = 0;
    const opened: string[] = [];
    env.openUrl = url => opened.push(url);
    server.handler = (req, res) => {
      if (req.method === 'PUT') {
        return json(res, 200, { status: 'Pending', statusType: 'Pending', url: '/services/kqi/proxy/tensorboard/4/' });
      }
      gets += 1;
      if (gets === 1) {
        return json(res, 200, { status: 'None', statusType: 'None', url: null });
      }
      return json(res, 200, { status: 'Running', statusType: 'Running', url: '/services/kqi/proxy/tensorboard/4/' });
    };
    const messages: Array<string | null> = [];
    await openTensorBoard(env, 4, m => messages.push(m ? m.text : null));
    expect(server.received.map(r => `${r.method} ${r.url}`)).toEqual([
      'GET /user/alice/kqi-7/kqi/api/v2/training/4/tensorboard',
      'PUT /user/alice/kqi-7/kqi/api/v2/training/4/tensorboard',
      'GET /user/alice/kqi-7/kqi/api/v2/training/4/tensorboard'
    ]);
    expect(messages).toEqual(['TensorBoard of 4 is starting; it opens when it is ready.', null]);
    expect(opened).toEqual(['/services/kqi/proxy/tensorboard/4/']);

    // one that runs opens at once, without starting another
    server.received.length = 0;
    await openTensorBoard(env, 4, () => undefined);
    expect(server.received.map(r => r.method)).toEqual(['GET']);
    expect(opened).toHaveLength(2);
  });
});
