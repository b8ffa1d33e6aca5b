/**
 * Calls to the kqi server extension of this notebook server (see labextension/CONTRACT.md):
 * `{base}kqi/api/v2/<path>` is the kqi service's KAMONOHASHI-v2 API in the notebook's tenant,
 * `{base}kqi/context`, `data-download`, `data-register`, `transfers/<id>` and
 * `train-from-here` are the server extension's own routes. Requests go through
 * ServerConnection.makeRequest, which adds the lab's XSRF token and credentials.
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type QueryValue = string | number | boolean | null | undefined | Array<string | number>;
export type Query = Record<string, QueryValue>;

/** A query string: arrays repeat their key, empty values (undefined, null, '') are left out. */
export function buildQuery(query?: Query): string {
  if (!query) {
    return '';
  }
  const parts: string[] = [];
  for (const key of Object.keys(query)) {
    const value = query[key];
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (v === undefined || v === null || v === '') {
        continue;
      }
      parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(v))}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** The URL of a server extension route, e.g. kqiUrl('/user/a/nb/', 'context'). */
export function kqiUrl(baseUrl: string, route: string, query?: Query): string {
  return URLExt.join(baseUrl, 'kqi', route) + buildQuery(query);
}

/** The URL of a kqi API route through the server extension, e.g. apiUrl(base, 'data', {page: 2}). */
export function apiUrl(baseUrl: string, path: string, query?: Query): string {
  return kqiUrl(baseUrl, URLExt.join('api/v2', path), query);
}

/** A failed call: the HTTP status, the server's message and its JSON body. */
export class KqiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: any = null
  ) {
    super(message);
    this.name = 'KqiError';
  }
}

/** The message of an error body: the server extension's {message}, the service's {detail} (+ field errors). */
export function errorMessage(status: number, body: any): string {
  if (body && typeof body === 'object') {
    const text = typeof body.message === 'string' && body.message ? body.message : typeof body.detail === 'string' ? body.detail : '';
    const errors = body.errors && typeof body.errors === 'object' ? body.errors : null;
    const fields: string[] = [];
    if (errors) {
      for (const field of Object.keys(errors)) {
        const messages = Array.isArray(errors[field]) ? errors[field] : [errors[field]];
        fields.push(`${field}: ${messages.join(', ')}`);
      }
    }
    if (text && fields.length && !fields.every(f => text.includes(f))) {
      return `${text} (${fields.join('; ')})`;
    }
    if (text) {
      return text;
    }
    if (fields.length) {
      return fields.join('; ');
    }
  }
  return `HTTP ${status}`;
}

/** A page of a list and the total the service counted (X-Total-Count), when it sent one. */
export interface Page<T> {
  items: T[];
  total: number | null;
  page: number;
  perPage: number;
}

export function pageCount(page: { total: number | null; perPage: number }): number {
  if (page.total === null) {
    return 1;
  }
  return Math.max(1, Math.ceil(page.total / page.perPage));
}

// --------------------------------------------------------------------- the objects we show
export interface Data {
  id: number;
  displayId?: number;
  name: string;
  memo?: string | null;
  tags: string[];
  createdAt?: string;
  createdBy?: string | null;
}

export interface DataFile {
  id: number;
  fileId: number;
  fileName: string;
  fileSize: number;
  key?: string;
}

export interface Dataset {
  id: number;
  name: string;
  memo?: string | null;
  isFlat?: boolean;
  createdAt?: string;
}

export interface DatasetDetails extends Dataset {
  entries: Record<string, Data[]>;
  flatEntries: Data[];
  isLocked: boolean;
  lockReasons: string[];
}

export interface Job {
  id: number;
  name: string;
  fullName?: string;
  memo?: string | null;
  status: string;
  statusType?: string | null;
  createdAt?: string;
  queuePosition?: number | null;
  waitReason?: string | null;
  outputValue?: string | null;
}

export interface JobFile {
  id: number;
  fileId: number;
  fileName: string;
  isLocked: boolean;
  url: string | null;
  size: number;
}

export interface TensorBoard {
  status: string;
  statusType?: string;
  url: string | null;
  remainingTime?: number | null;
}

export interface GitFacts {
  path: string;
  url: string | null;
  branch: string | null;
  commit: string | null;
  dirty: string[];
}

export interface NotebookContext {
  tenantId: number | null;
  tenantName: string | null;
  user: string | null;
  notebookId: number | null;
  datasetId: number | null;
  trainingIds: number[];
  inferenceIds: number[];
  image: string | null;
  expiresAt: string | null;
  secondsLeft: number | null;
  git: GitFacts[];
  kqiServer?: string | null;
}

export interface Transfer {
  transferId?: string;
  state: 'running' | 'done' | 'failed' | string;
  bytesDone: number;
  bytesTotal: number;
  dataId: number | null;
  error: string | null;
}

/** The two kinds of job the panels list: their API base path. */
export type JobKind = 'training' | 'inference';
export const JOB_BASE: Record<JobKind, string> = { training: 'training', inference: 'inferences' };

/** Statuses of a job that has not ended (the web UI's JOB_ACTIVE). */
export const JOB_ACTIVE = ['Pending', 'Queued', 'Booting', 'Running'];

export function isActive(status: string): boolean {
  return JOB_ACTIVE.includes(status);
}

// --------------------------------------------------------------------- the client
export interface IClientOptions {
  baseUrl?: string;
  settings?: ServerConnection.ISettings;
}

export class KqiClient {
  readonly baseUrl: string;
  readonly settings: ServerConnection.ISettings;

  constructor(options: IClientOptions = {}) {
    this.settings = options.settings ?? ServerConnection.makeSettings();
    this.baseUrl = options.baseUrl ?? (this.settings.baseUrl || PageConfig.getBaseUrl());
  }

  /** A raw request; throws KqiError for a status of 400 or more (with the server's message). */
  async request(method: string, url: string, body?: unknown, headers?: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    // 'no-cache' (revalidate) rather than the settings' 'no-store', for which ServerConnection
    // adds a bare ?<timestamp> parameter that the kqi API would take for an unknown query field
    const init: RequestInit = { method, cache: 'no-cache', headers: { ...(headers || {}) } };
    if (signal) {
      init.signal = signal;
    }
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
    }
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (err) {
      throw new KqiError(0, (err as Error).message || String(err));
    }
    if (!response.ok) {
      let data: any = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      throw new KqiError(response.status, errorMessage(response.status, data), data);
    }
    return response;
  }

  private async json<T>(method: string, url: string, body?: unknown): Promise<T> {
    const response = await this.request(method, url, body);
    if (response.status === 204) {
      return null as unknown as T;
    }
    const text = await response.text();
    return (text ? JSON.parse(text) : null) as T;
  }

  /** An API call through the server extension. */
  api<T>(method: string, path: string, query?: Query, body?: unknown): Promise<T> {
    return this.json<T>(method, apiUrl(this.baseUrl, path, query), body);
  }

  /** A page of a list route, with its total. */
  async page<T>(path: string, query: Query, page: number, perPage: number): Promise<Page<T>> {
    const response = await this.request('GET', apiUrl(this.baseUrl, path, { ...query, perPage, page, withTotal: true }));
    const items = (await response.json()) as T[];
    const header = response.headers.get('X-Total-Count');
    const total = header !== null && header !== '' && !isNaN(Number(header)) ? Number(header) : null;
    return { items, total, page, perPage };
  }

  context(): Promise<NotebookContext> {
    return this.json('GET', kqiUrl(this.baseUrl, 'context'));
  }

  dataPage(query: Query, page: number, perPage: number): Promise<Page<Data>> {
    return this.page<Data>('data', query, page, perPage);
  }

  dataFiles(dataId: number): Promise<DataFile[]> {
    return this.api('GET', `data/${dataId}/files`);
  }

  datasetsPage(query: Query, page: number, perPage: number): Promise<Page<Dataset>> {
    return this.page<Dataset>('datasets', query, page, perPage);
  }

  dataset(id: number): Promise<DatasetDetails> {
    return this.api('GET', `datasets/${id}`);
  }

  jobsPage(kind: JobKind, query: Query, page: number, perPage: number): Promise<Page<Job>> {
    return this.page<Job>(JOB_BASE[kind], query, page, perPage);
  }

  job(kind: JobKind, id: number): Promise<Job> {
    return this.api('GET', `${JOB_BASE[kind]}/${id}`);
  }

  halt(kind: JobKind, id: number): Promise<Job> {
    return this.api('POST', `${JOB_BASE[kind]}/${id}/halt`);
  }

  jobFiles(kind: JobKind, id: number): Promise<JobFile[]> {
    return this.api('GET', `${JOB_BASE[kind]}/${id}/files`, { withUrl: true });
  }

  tensorboard(id: number): Promise<TensorBoard> {
    return this.api('GET', `training/${id}/tensorboard`);
  }

  startTensorboard(id: number): Promise<TensorBoard> {
    return this.api('PUT', `training/${id}/tensorboard`, undefined, {});
  }

  /** The log of a job from a byte offset; with follow the answer stays open while the job runs. */
  log(kind: JobKind, id: number, offset: number, follow: boolean, signal?: AbortSignal): Promise<Response> {
    return this.request(
      'GET',
      apiUrl(this.baseUrl, `${JOB_BASE[kind]}/${id}/log`, { follow, offset }),
      undefined,
      { Accept: 'text/plain' },
      signal
    );
  }

  dataDownload(dataId: number, path: string): Promise<{ files: string[] }> {
    return this.json('POST', kqiUrl(this.baseUrl, 'data-download'), { dataId, path });
  }

  dataRegister(body: { name: string; memo: string; tags: string[]; paths: string[] }): Promise<{ transferId: string }> {
    return this.json('POST', kqiUrl(this.baseUrl, 'data-register'), body);
  }

  transfer(id: string): Promise<Transfer> {
    return this.json('GET', kqiUrl(this.baseUrl, `transfers/${encodeURIComponent(id)}`));
  }

  trainFromHere(body: Record<string, unknown>): Promise<Job> {
    return this.json('POST', kqiUrl(this.baseUrl, 'train-from-here'), body);
  }
}
