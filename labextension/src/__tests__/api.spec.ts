import { ServerConnection } from '@jupyterlab/services';

import { apiUrl, buildQuery, errorMessage, KqiClient, KqiError, kqiUrl, pageCount } from '../api';
import { json, TestServer } from './server';

describe('request URLs', () => {
  it('builds queries: arrays repeat their key, empty values are left out', () => {
    expect(buildQuery()).toBe('');
    expect(buildQuery({ a: undefined, b: null, c: '' })).toBe('');
    expect(buildQuery({ name: 'a b&c', tag: ['x', 'y/z'], page: 2, withTotal: true })).toBe('?name=a%20b%26c&tag=x&tag=y%2Fz&page=2&withTotal=true');
  });

  it('puts the routes under the lab base URL', () => {
    expect(kqiUrl('/user/alice/kqi-7/', 'context')).toBe('/user/alice/kqi-7/kqi/context');
    expect(kqiUrl('/', 'transfers/abc')).toBe('/kqi/transfers/abc');
    expect(apiUrl('/user/alice/kqi-7/', 'data/3/files', { withUrl: true })).toBe('/user/alice/kqi-7/kqi/api/v2/data/3/files?withUrl=true');
    expect(apiUrl('http://h:1/user/a/nb/', 'training', { perPage: 20, page: 1 })).toBe('http://h:1/user/a/nb/kqi/api/v2/training?perPage=20&page=1');
  });

  it('reads messages of both error shapes', () => {
    expect(errorMessage(409, { message: 'uncommitted changes', dirty: ['a'] })).toBe('uncommitted changes');
    expect(errorMessage(400, { detail: 'Bad input.', errors: { name: ['is required'] } })).toBe('Bad input. (name: is required)');
    expect(errorMessage(400, { detail: 'name: is required', errors: { name: ['is required'] } })).toBe('name: is required');
    expect(errorMessage(404, null)).toBe('HTTP 404');
  });

  it('counts pages', () => {
    expect(pageCount({ total: null, perPage: 20 })).toBe(1);
    expect(pageCount({ total: 0, perPage: 20 })).toBe(1);
    expect(pageCount({ total: 41, perPage: 20 })).toBe(3);
  });
});

describe('KqiClient against an HTTP server', () => {
  const server = new TestServer();
  let client: KqiClient;

  beforeAll(async () => {
    await server.start();
    document.cookie = '_xsrf=xsrf-of-the-lab';
    client = new KqiClient({ settings: ServerConnection.makeSettings({ baseUrl: server.base }) });
  });
  afterAll(() => server.stop());
  beforeEach(() => {
    server.received.length = 0;
  });

  it('asks for a page with perPage, page and withTotal, and reads X-Total-Count', async () => {
    server.handler = (_req, res) => json(res, 200, [{ id: 2, name: 'b', tags: ['t'] }], { 'X-Total-Count': '41' });
    const page = await client.dataPage({ name: 'b', tag: ['t', 'u'] }, 3, 20);
    expect(page).toEqual({ items: [{ id: 2, name: 'b', tags: ['t'] }], total: 41, page: 3, perPage: 20 });
    const [req] = server.received;
    expect(req.method).toBe('GET');
    expect(req.url).toBe('/user/alice/kqi-7/kqi/api/v2/data?name=b&tag=t&tag=u&perPage=20&page=3&withTotal=true');
  });

  it('sends JSON bodies with the lab XSRF token', async () => {
    server.handler = (_req, res) => json(res, 202, { transferId: 'tr-1' });
    const answer = await client.dataRegister({ name: 'new', memo: 'm', tags: ['a'], paths: ['x/a.csv'] });
    expect(answer).toEqual({ transferId: 'tr-1' });
    const [req] = server.received;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/user/alice/kqi-7/kqi/data-register');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['x-xsrftoken']).toBe('xsrf-of-the-lab');
    expect(JSON.parse(req.body)).toEqual({ name: 'new', memo: 'm', tags: ['a'], paths: ['x/a.csv'] });
  });

  it('calls the job routes of each kind', async () => {
    server.handler = (req, res) => json(res, 200, req.url.endsWith('/files?withUrl=true') ? [] : { id: 1, name: 'j', status: 'Running' });
    await client.halt('training', 4);
    await client.halt('inference', 5);
    await client.jobFiles('inference', 6);
    await client.job('training', 7);
    await client.startTensorboard(8);
    await client.dataDownload(9, 'work/sub');
    await client.transfer('a b');
    expect(server.received.map(r => `${r.method} ${r.url}`)).toEqual([
      'POST /user/alice/kqi-7/kqi/api/v2/training/4/halt',
      'POST /user/alice/kqi-7/kqi/api/v2/inferences/5/halt',
      'GET /user/alice/kqi-7/kqi/api/v2/inferences/6/files?withUrl=true',
      'GET /user/alice/kqi-7/kqi/api/v2/training/7',
      'PUT /user/alice/kqi-7/kqi/api/v2/training/8/tensorboard',
      'POST /user/alice/kqi-7/kqi/data-download',
      'GET /user/alice/kqi-7/kqi/transfers/a%20b'
    ]);
    expect(JSON.parse(server.received[5].body)).toEqual({ dataId: 9, path: 'work/sub' });
  });

  it('turns error answers into KqiError with the body', async () => {
    server.handler = (_req, res) => json(res, 409, { message: 'The repository has uncommitted changes.', dirty: ['train.py'] });
    const err = await client.trainFromHere({ name: 'x', allowDirty: false }).catch(e => e);
    expect(err).toBeInstanceOf(KqiError);
    expect(err.status).toBe(409);
    expect(err.message).toBe('The repository has uncommitted changes.');
    expect(err.body.dirty).toEqual(['train.py']);
    server.handler = (_req, res) => {
      res.statusCode = 502;
      res.end('not json');
    };
    const bad = await client.context().catch(e => e);
    expect(bad).toBeInstanceOf(KqiError);
    expect(bad.status).toBe(502);
    expect(bad.message).toBe('HTTP 502');
  });
});
