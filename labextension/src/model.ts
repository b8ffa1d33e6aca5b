/**
 * The panels' logic as plain functions (no DOM, no requests), tested in src/__tests__.
 */
import type { DatasetDetails, Data, GitFacts, Job, NotebookContext, Query, Transfer } from './api';
import type { Translate } from './i18n';

// --------------------------------------------------------------------- data search
/**
 * A search box's text as the data list's query: `tag:x` (or `#x`) words are tags (all must
 * match), the other words are a part of the name.
 */
export function parseDataSearch(text: string): Query {
  const tags: string[] = [];
  const words: string[] = [];
  for (const word of (text || '').split(/\s+/)) {
    if (!word) {
      continue;
    }
    const m = /^(?:tag:|#)(.+)$/i.exec(word);
    if (m) {
      tags.push(m[1]);
    } else {
      words.push(word);
    }
  }
  const query: Query = {};
  if (words.length) {
    query.name = words.join(' ');
  }
  if (tags.length) {
    query.tag = tags;
  }
  return query;
}

/** A data as a list row: "id:name", its tags and memo. */
export function dataLabel(data: Pick<Data, 'id' | 'name'>): string {
  return `${data.id}:${data.name}`;
}

// --------------------------------------------------------------------- datasets
export interface AreaView {
  area: string;
  items: Data[];
}

/** The areas of a dataset in the guide's order (training, testing, validation, then others); a flat one has one. */
export function datasetAreas(details: Pick<DatasetDetails, 'entries' | 'flatEntries' | 'isFlat'>, flatLabel: string): AreaView[] {
  if (details.isFlat) {
    return [{ area: flatLabel, items: details.flatEntries || [] }];
  }
  const order = ['training', 'testing', 'validation'];
  const names = Object.keys(details.entries || {});
  names.sort((a, b) => {
    const ia = order.indexOf(a) < 0 ? order.length : order.indexOf(a);
    const ib = order.indexOf(b) < 0 ? order.length : order.indexOf(b);
    return ia - ib || a.localeCompare(b);
  });
  return names.map(area => ({ area, items: details.entries[area] || [] }));
}

// --------------------------------------------------------------------- jobs
export interface JobRow {
  id: number;
  label: string;
  status: string;
  statusClass: string;
  queue: string | null;
}

/** A CSS class for a status, grouped like the web UI's badges. */
export function statusClass(status: string): string {
  switch (status) {
    case 'Completed':
      return 'kqi-status-ok';
    case 'Failed':
    case 'Error':
    case 'Killed':
    case 'UserCanceled':
      return 'kqi-status-bad';
    case 'Running':
    case 'Booting':
      return 'kqi-status-running';
    default:
      return 'kqi-status-waiting';
  }
}

/** A job as a list row: id:name, status, and where it waits in the queue (only while Queued). */
export function jobRow(job: Job, t: Translate): JobRow {
  let queue: string | null = null;
  if (job.status === 'Queued') {
    const parts: string[] = [];
    if (typeof job.queuePosition === 'number') {
      parts.push(t('jobs.queue_position', { position: job.queuePosition }));
    }
    if (job.waitReason) {
      parts.push(t('jobs.waiting_because', { reason: job.waitReason }));
    }
    queue = parts.length ? parts.join(' · ') : null;
  }
  return { id: job.id, label: `${job.id}:${job.name}`, status: job.status, statusClass: statusClass(job.status), queue };
}

/** The stored log among a job's files (…_stdout_stderr_<n>.log), if any. */
export function isLogFile(name: string): boolean {
  return /_stdout_stderr_\d+\.log$/.test(name);
}

// --------------------------------------------------------------------- transfers
/** The percentage of a transfer (0–100, whole numbers); 100 once done. */
export function transferPercent(transfer: Pick<Transfer, 'state' | 'bytesDone' | 'bytesTotal'>): number {
  if (transfer.state === 'done') {
    return 100;
  }
  if (!transfer.bytesTotal || transfer.bytesTotal <= 0) {
    return 0;
  }
  return Math.max(0, Math.min(100, Math.floor((transfer.bytesDone / transfer.bytesTotal) * 100)));
}

/** A byte count for people: 0 B, 1.5 KB, 12 MB … */
export function formatSize(bytes: number): string {
  if (!isFinite(bytes) || bytes < 0) {
    return '-';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 || value >= 10 ? String(Math.round(value)) : value.toFixed(1);
  return `${text} ${units[unit]}`;
}

/** Paths the file browser has selected that can be uploaded (files; folders are left out). */
export function uploadablePaths(items: Array<{ path: string; type: string }>): string[] {
  return items.filter(item => item.type !== 'directory').map(item => item.path);
}

/** "a, b" → ['a', 'b'] (trimmed, no empties, no repeats). */
export function parseTags(text: string): string[] {
  const out: string[] = [];
  for (const part of (text || '').split(/[,、]/)) {
    const tag = part.trim();
    if (tag && !out.includes(tag)) {
      out.push(tag);
    }
  }
  return out;
}

// --------------------------------------------------------------------- the notebook's facts
/** Seconds left as "2 h 5 min" / "4 min 10 s"; null = no lifetime. */
export function formatTimeLeft(seconds: number | null | undefined, t: Translate): string {
  if (seconds === null || seconds === undefined) {
    return t('nb.unlimited');
  }
  if (seconds <= 0) {
    return t('nb.expired');
  }
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) {
    return t('nb.hours_minutes', { h, m });
  }
  return t('nb.minutes_seconds', { m, s: s % 60 });
}

/** Seconds left now, from the context's secondsLeft and how long ago it was read. */
export function secondsLeftNow(context: Pick<NotebookContext, 'secondsLeft'>, readAtMs: number, nowMs: number): number | null {
  if (context.secondsLeft === null || context.secondsLeft === undefined) {
    return null;
  }
  return Math.max(0, context.secondsLeft - Math.floor((nowMs - readAtMs) / 1000));
}

// --------------------------------------------------------------------- train from here
export interface TrainForm {
  /** Which of the notebook's repositories (a path of the context's git list; '' = none). */
  repositoryPath: string;
  name: string;
  memo: string;
  entryPoint: string;
  image: string;
  tag: string;
  dataSetId: string;
  cpu: string;
  memory: string;
  gpu: string;
  zip: boolean;
}

/** "python:3.11" → {image: 'python', tag: '3.11'}; the tag is after the last ':' that follows the last '/'. */
export function splitImage(full: string | null | undefined): { image: string; tag: string } {
  const text = (full || '').trim();
  const slash = text.lastIndexOf('/');
  const colon = text.lastIndexOf(':');
  if (colon > slash) {
    return { image: text.slice(0, colon), tag: text.slice(colon + 1) };
  }
  return { image: text, tag: text ? 'latest' : '' };
}

/** The form's first values, from the notebook's context. */
export function trainDefaults(context: NotebookContext | null): TrainForm {
  const { image, tag } = splitImage(context?.image);
  const git = context?.git?.[0];
  const base = git?.url ? git.url.replace(/\.git$/, '').split('/').pop() || 'training' : 'training';
  return {
    repositoryPath: git?.path || '',
    name: `${base}-from-notebook${context?.notebookId ? `-${context.notebookId}` : ''}`.replace(/[^A-Za-z0-9_.-]/g, '-'),
    memo: context?.notebookId ? `notebook ${context.notebookId}` : '',
    entryPoint: '',
    image,
    tag,
    dataSetId: context?.datasetId ? String(context.datasetId) : '',
    cpu: '1',
    memory: '1',
    gpu: '0',
    zip: false
  };
}

/** Field errors of the form (label keys), empty when it can be sent. */
export function validateTrainForm(form: TrainForm): Record<string, string> {
  const errors: Record<string, string> = {};
  if (!form.name.trim()) {
    errors.name = 'train.name_required';
  }
  if (!form.entryPoint.trim()) {
    errors.entryPoint = 'train.entry_required';
  }
  return errors;
}

/** The body of POST kqi/train-from-here; the server extension fills what is left out from the notebook. */
export function trainBody(form: TrainForm, allowDirty: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {
    name: form.name.trim(),
    entryPoint: form.entryPoint,
    cpu: Number(form.cpu),
    memory: Number(form.memory),
    gpu: Number(form.gpu),
    zip: form.zip,
    allowDirty
  };
  if (form.memo.trim()) {
    body.memo = form.memo;
  }
  if (form.repositoryPath) {
    body.repositoryPath = form.repositoryPath;
  }
  if (form.image.trim()) {
    body.containerImage = { image: form.image.trim(), tag: form.tag.trim() || 'latest' };
  }
  if (form.dataSetId.trim()) {
    body.dataSetId = Number(form.dataSetId);
  }
  return body;
}

/** What the submit says about uncommitted changes: one line per repository with its files (at most `limit` each). */
export function dirtyLines(git: GitFacts[], t: Translate, limit = 10): Array<{ title: string; files: string[]; more: string | null }> {
  return (git || [])
    .filter(g => g.dirty && g.dirty.length)
    .map(g => ({
      title: t('train.dirty', { path: g.path, commit: (g.commit || '').slice(0, 10) || '-' }),
      files: g.dirty.slice(0, limit),
      more: g.dirty.length > limit ? t('train.dirty_more', { count: g.dirty.length - limit }) : null
    }));
}

/** The notebook's repository the form names (the first when it names none that is there). */
export function chosenRepository(context: NotebookContext | null, path: string): GitFacts | null {
  const git = context?.git || [];
  return git.find(g => g.path === path) || git[0] || null;
}

/** The dirty files a 409 of train-from-here names, as GitFacts for dirtyLines (its path, else the chosen repository's). */
export function dirtyFromConflict(body: any, repository: GitFacts | null): GitFacts[] {
  const files: string[] = Array.isArray(body?.dirty) ? body.dirty.map(String) : [];
  const path = typeof body?.path === 'string' && body.path ? body.path : repository?.path || '/kqi/git';
  return [{ path, url: repository?.url ?? null, branch: repository?.branch ?? null, commit: repository?.commit ?? null, dirty: files }];
}
