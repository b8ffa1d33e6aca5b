/**
 * The KQI sidebar's panels (React, inside a ReactWidget): data, datasets, trainings,
 * inferences, "train from here" and the notebook's own facts.
 */
import * as React from 'react';

import {
  Data,
  DataFile,
  Dataset,
  DatasetDetails,
  isActive,
  Job,
  JobFile,
  JobKind,
  KqiClient,
  KqiError,
  NotebookContext,
  Page,
  pageCount,
  Transfer
} from './api';
import type { Translate } from './i18n';
import {
  chosenRepository,
  dataLabel,
  datasetAreas,
  dirtyFromConflict,
  dirtyLines,
  formatSize,
  formatTimeLeft,
  jobRow,
  parseDataSearch,
  parseTags,
  secondsLeftNow,
  trainBody,
  trainDefaults,
  TrainForm,
  transferPercent,
  uploadablePaths,
  validateTrainForm
} from './model';

export type TabName = 'data' | 'datasets' | 'training' | 'inference' | 'train' | 'notebook';
export const TABS: TabName[] = ['data', 'datasets', 'training', 'inference', 'train', 'notebook'];

/** What the panels need from JupyterLab. */
export interface IKqiEnv {
  client: KqiClient;
  t: Translate;
  /** The file browser's current folder (relative to the server's root). */
  currentPath(): string;
  /** The file browser's selected items. */
  selectedItems(): Array<{ path: string; type: string }>;
  refreshBrowser(): Promise<void>;
  openLog(kind: JobKind, id: number, name: string): void;
  openUrl(url: string): void;
  /** Ask the user to confirm (a JupyterLab dialog). */
  confirm(message: string): Promise<boolean>;
  /** Show another tab of the sidebar. */
  showTab(tab: TabName): void;
}

const PER_PAGE = 20;

type Message = { kind: 'info' | 'success' | 'error'; text: string } | null;

function errorText(t: Translate, err: unknown): string {
  if (err instanceof KqiError) {
    return t('kqi.error', { message: err.message || t('kqi.error_status', { status: err.status }) });
  }
  return t('kqi.error', { message: (err as Error)?.message || String(err) });
}

function MessageBox(props: { message: Message }): JSX.Element | null {
  if (!props.message) {
    return null;
  }
  return (
    <div className={`kqi-message kqi-message-${props.message.kind}`} role={props.message.kind === 'error' ? 'alert' : 'status'}>
      {props.message.text}
    </div>
  );
}

function Pager(props: { page: Page<unknown> | null; onPage: (page: number) => void; t: Translate }): JSX.Element | null {
  const { page, t } = props;
  if (!page || page.total === null || page.total <= page.perPage) {
    return null;
  }
  const pages = pageCount(page);
  return (
    <div className="kqi-pager">
      <button className="jp-mod-styled kqi-button" disabled={page.page <= 1} onClick={() => props.onPage(page.page - 1)}>
        {t('kqi.previous')}
      </button>
      <span className="kqi-pager-text">{t('kqi.page_of', { page: page.page, pages, total: page.total })}</span>
      <button className="jp-mod-styled kqi-button" disabled={page.page >= pages} onClick={() => props.onPage(page.page + 1)}>
        {t('kqi.next')}
      </button>
    </div>
  );
}

/** A list page loaded from the API, reloaded when the query, the page or `refresh` change. */
function usePage<T>(load: (page: number) => Promise<Page<T>>, deps: unknown[], refresh: number) {
  const [page, setPage] = React.useState(1);
  const [data, setData] = React.useState<Page<T> | null>(null);
  const [error, setError] = React.useState<unknown>(null);
  const [loading, setLoading] = React.useState(false);
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    let live = true;
    setLoading(true);
    load(page)
      .then(result => {
        if (live) {
          setData(result);
          setError(null);
        }
      })
      .catch(err => live && setError(err))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [page, refresh, tick, ...deps]);
  return { page, setPage, data, error, loading, reload: () => setTick(x => x + 1) };
}

// ===================================================================== data
function DataFiles(props: { env: IKqiEnv; data: Data }): JSX.Element {
  const { env, data } = props;
  const t = env.t;
  const [files, setFiles] = React.useState<DataFile[] | null>(null);
  const [error, setError] = React.useState<unknown>(null);
  React.useEffect(() => {
    env.client.dataFiles(data.id).then(setFiles, setError);
  }, [data.id]);
  if (error) {
    return <div className="kqi-message kqi-message-error">{errorText(t, error)}</div>;
  }
  if (!files) {
    return <div className="kqi-muted">{t('kqi.loading')}</div>;
  }
  if (!files.length) {
    return <div className="kqi-muted">{t('data.no_files')}</div>;
  }
  return (
    <ul className="kqi-files" data-data-id={data.id}>
      {files.map(f => (
        <li key={f.fileId} className="kqi-file" data-file-name={f.fileName}>
          <span className="kqi-file-name">{f.fileName}</span> <span className="kqi-muted">{formatSize(f.fileSize)}</span>
        </li>
      ))}
    </ul>
  );
}

function RegisterForm(props: { env: IKqiEnv; paths: string[]; onRegistered: (dataId: number | null) => void; onClose: () => void }): JSX.Element {
  const { env, paths } = props;
  const t = env.t;
  const [name, setName] = React.useState('');
  const [memo, setMemo] = React.useState('');
  const [tags, setTags] = React.useState('');
  const [transfer, setTransfer] = React.useState<Transfer | null>(null);
  const [message, setMessage] = React.useState<Message>(null);
  const [busy, setBusy] = React.useState(false);
  const [finished, setFinished] = React.useState(false);
  const live = React.useRef(true);
  React.useEffect(
    () => () => {
      live.current = false;
    },
    []
  );

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    if (!name.trim()) {
      setMessage({ kind: 'error', text: t('data.name_required') });
      return;
    }
    setBusy(true);
    setMessage(null);
    try {
      const { transferId } = await env.client.dataRegister({ name: name.trim(), memo, tags: parseTags(tags), paths });
      for (;;) {
        const state = await env.client.transfer(transferId);
        if (!live.current) {
          return;
        }
        setTransfer(state);
        if (state.state === 'done') {
          setMessage({ kind: 'success', text: t('data.registered', { id: state.dataId ?? '-' }) });
          setFinished(true);
          props.onRegistered(state.dataId);
          break;
        }
        if (state.state === 'failed') {
          setMessage({ kind: 'error', text: t('data.register_failed', { message: state.error || '-' }) });
          break;
        }
        await new Promise(resolve => setTimeout(resolve, 500));
      }
    } catch (err) {
      setMessage({ kind: 'error', text: errorText(t, err) });
    } finally {
      if (live.current) {
        setBusy(false);
      }
    }
  }

  const percent = transfer ? transferPercent(transfer) : 0;
  return (
    <form className="kqi-form kqi-register-form" onSubmit={submit}>
      <div className="kqi-muted kqi-register-paths">{t('data.register_selected', { paths: paths.join(', ') })}</div>
      <label>
        {t('data.register_name')}
        <input className="jp-mod-styled kqi-register-name" value={name} onChange={e => setName(e.target.value)} />
      </label>
      <label>
        {t('data.register_memo')}
        <input className="jp-mod-styled kqi-register-memo" value={memo} onChange={e => setMemo(e.target.value)} />
      </label>
      <label>
        {t('data.register_tags')}
        <input className="jp-mod-styled kqi-register-tags" value={tags} onChange={e => setTags(e.target.value)} />
      </label>
      {transfer && (
        <div className="kqi-progress" data-state={transfer.state}>
          <progress className="kqi-register-progress" max={100} value={percent} />
          <span>{t('data.registering', { done: formatSize(transfer.bytesDone), total: formatSize(transfer.bytesTotal) })}</span>
        </div>
      )}
      <MessageBox message={message} />
      <div className="kqi-buttons">
        {finished ? null : (
          <button type="submit" className="jp-mod-styled jp-mod-accept kqi-button kqi-register-submit" disabled={busy}>
            {t('data.register_submit')}
          </button>
        )}
        <button type="button" className="jp-mod-styled kqi-button kqi-register-close" disabled={busy} onClick={props.onClose}>
          {finished ? t('kqi.close') : t('data.register_cancel')}
        </button>
      </div>
    </form>
  );
}

export function DataPanel(props: { env: IKqiEnv; refresh: number; registerRequest: number }): JSX.Element {
  const { env } = props;
  const t = env.t;
  const [text, setText] = React.useState('');
  const [query, setQuery] = React.useState(parseDataSearch(''));
  const [open, setOpen] = React.useState<number | null>(null);
  const [message, setMessage] = React.useState<Message>(null);
  const [register, setRegister] = React.useState<string[] | null>(null);
  const list = usePage<Data>(page => env.client.dataPage(query, page, PER_PAGE), [JSON.stringify(query)], props.refresh);

  function startRegister() {
    const paths = uploadablePaths(env.selectedItems());
    if (!paths.length) {
      setMessage({ kind: 'error', text: t('data.register_none') });
      setRegister(null);
      return;
    }
    setMessage(null);
    setRegister(paths);
  }
  React.useEffect(() => {
    if (props.registerRequest) {
      startRegister();
    }
  }, [props.registerRequest]);

  async function download(data: Data) {
    const path = env.currentPath();
    setMessage({ kind: 'info', text: t('data.downloading', { id: data.id, name: data.name, path: `/${path}` }) });
    try {
      const result = await env.client.dataDownload(data.id, path);
      setMessage({ kind: 'success', text: t('data.downloaded', { count: result.files.length, id: data.id, name: data.name, path: `/${path}` }) });
      await env.refreshBrowser();
    } catch (err) {
      setMessage({ kind: 'error', text: errorText(t, err) });
    }
  }

  return (
    <div className="kqi-panel kqi-data-panel">
      <form
        className="kqi-search"
        onSubmit={e => {
          e.preventDefault();
          list.setPage(1);
          setQuery(parseDataSearch(text));
        }}
      >
        <label className="kqi-search-label">
          {t('data.search')}
          <input
            className="jp-mod-styled kqi-data-search"
            value={text}
            placeholder={t('data.search_placeholder')}
            onChange={e => setText(e.target.value)}
          />
        </label>
        <button type="submit" className="jp-mod-styled kqi-button kqi-data-search-button">
          {t('data.search_button')}
        </button>
      </form>
      <div className="kqi-buttons">
        <button className="jp-mod-styled kqi-button kqi-register" title={t('data.register_title')} onClick={startRegister}>
          {t('data.register')}
        </button>
      </div>
      {register && (
        <RegisterForm
          env={env}
          paths={register}
          onRegistered={() => list.reload()}
          onClose={() => setRegister(null)}
        />
      )}
      <MessageBox message={message} />
      {list.error ? <div className="kqi-message kqi-message-error">{errorText(t, list.error)}</div> : null}
      {list.loading && !list.data ? <div className="kqi-muted">{t('kqi.loading')}</div> : null}
      {list.data && !list.data.items.length ? <div className="kqi-muted kqi-empty">{t('data.empty')}</div> : null}
      <ul className="kqi-list kqi-data-list">
        {(list.data?.items || []).map(data => (
          <li key={data.id} className="kqi-item kqi-data" data-data-id={data.id}>
            <div className="kqi-item-head">
              <button className="kqi-link kqi-data-name" onClick={() => setOpen(open === data.id ? null : data.id)} title={t('data.files')}>
                {dataLabel(data)}
              </button>
              <button className="jp-mod-styled kqi-button kqi-small kqi-data-download" title={t('data.download_title')} onClick={() => download(data)}>
                {t('data.download')}
              </button>
            </div>
            {data.tags?.length ? (
              <div className="kqi-tags">
                {data.tags.map(tag => (
                  <button key={tag} className="kqi-tag" onClick={() => {
                    const next = `tag:${tag}`;
                    setText(next);
                    list.setPage(1);
                    setQuery(parseDataSearch(next));
                  }}>
                    {tag}
                  </button>
                ))}
              </div>
            ) : null}
            {data.memo ? <div className="kqi-muted kqi-memo">{data.memo}</div> : null}
            {open === data.id ? <DataFiles env={env} data={data} /> : null}
          </li>
        ))}
      </ul>
      <Pager page={list.data} onPage={list.setPage} t={t} />
    </div>
  );
}

// ===================================================================== datasets
function DatasetEntries(props: { env: IKqiEnv; dataset: Dataset }): JSX.Element {
  const { env, dataset } = props;
  const t = env.t;
  const [details, setDetails] = React.useState<DatasetDetails | null>(null);
  const [error, setError] = React.useState<unknown>(null);
  React.useEffect(() => {
    env.client.dataset(dataset.id).then(setDetails, setError);
  }, [dataset.id]);
  if (error) {
    return <div className="kqi-message kqi-message-error">{errorText(t, error)}</div>;
  }
  if (!details) {
    return <div className="kqi-muted">{t('kqi.loading')}</div>;
  }
  return (
    <div className="kqi-dataset-details" data-locked={details.isLocked ? 'true' : 'false'}>
      <div className={`kqi-lock ${details.isLocked ? 'kqi-locked' : 'kqi-unlocked'}`}>
        {details.isLocked ? t('datasets.locked') : t('datasets.unlocked')}
        {details.isLocked && details.lockReasons?.length ? ` — ${t('datasets.lock_reasons', { reasons: details.lockReasons.join(', ') })}` : ''}
      </div>
      {datasetAreas(details, t('datasets.flat')).map(area => (
        <div key={area.area} className="kqi-area" data-area={area.area}>
          <div className="kqi-area-name">{t('datasets.area', { area: area.area, count: area.items.length })}</div>
          {area.items.length ? (
            <ul className="kqi-area-items">
              {area.items.map(d => (
                <li key={d.id}>{dataLabel(d)}</li>
              ))}
            </ul>
          ) : (
            <div className="kqi-muted">{t('datasets.no_entries')}</div>
          )}
        </div>
      ))}
    </div>
  );
}

export function DatasetsPanel(props: { env: IKqiEnv; refresh: number }): JSX.Element {
  const { env } = props;
  const t = env.t;
  const [open, setOpen] = React.useState<number | null>(null);
  const list = usePage<Dataset>(page => env.client.datasetsPage({}, page, PER_PAGE), [], props.refresh);
  return (
    <div className="kqi-panel kqi-datasets-panel">
      {list.error ? <div className="kqi-message kqi-message-error">{errorText(t, list.error)}</div> : null}
      {list.data && !list.data.items.length ? <div className="kqi-muted kqi-empty">{t('datasets.empty')}</div> : null}
      <ul className="kqi-list kqi-dataset-list">
        {(list.data?.items || []).map(ds => (
          <li key={ds.id} className="kqi-item kqi-dataset" data-dataset-id={ds.id}>
            <button className="kqi-link kqi-dataset-name" onClick={() => setOpen(open === ds.id ? null : ds.id)}>
              {dataLabel(ds)}
            </button>
            {ds.memo ? <div className="kqi-muted kqi-memo">{ds.memo}</div> : null}
            {open === ds.id ? <DatasetEntries env={env} dataset={ds} /> : null}
          </li>
        ))}
      </ul>
      <Pager page={list.data} onPage={list.setPage} t={t} />
    </div>
  );
}

// ===================================================================== jobs
function JobOutput(props: { env: IKqiEnv; kind: JobKind; job: Job }): JSX.Element {
  const { env, kind, job } = props;
  const t = env.t;
  const [files, setFiles] = React.useState<JobFile[] | null>(null);
  const [error, setError] = React.useState<unknown>(null);
  React.useEffect(() => {
    env.client.jobFiles(kind, job.id).then(setFiles, setError);
  }, [job.id, job.status]);
  if (error) {
    return <div className="kqi-message kqi-message-error">{errorText(t, error)}</div>;
  }
  if (!files) {
    return <div className="kqi-muted">{t('kqi.loading')}</div>;
  }
  return (
    <div className="kqi-job-output">
      <div className="kqi-muted">{t('jobs.output_files', { id: job.id, name: job.name })}</div>
      {files.length ? (
        <ul className="kqi-files">
          {files.map(f => (
            <li key={f.fileId} className="kqi-file" data-file-name={f.fileName}>
              {f.url ? (
                <a href={f.url} download={f.fileName} target="_blank" rel="noopener noreferrer">
                  {f.fileName}
                </a>
              ) : (
                <span>{f.fileName}</span>
              )}{' '}
              <span className="kqi-muted">{formatSize(f.size)}</span>
            </li>
          ))}
        </ul>
      ) : (
        <div className="kqi-muted">{t('jobs.no_output')}</div>
      )}
    </div>
  );
}

/** Opens a training's TensorBoard: starts it when it is not running, then opens its page once it has one. */
export async function openTensorBoard(env: IKqiEnv, trainingId: number, onMessage: (m: Message) => void): Promise<void> {
  const t = env.t;
  try {
    let board = await env.client.tensorboard(trainingId);
    if (board.status !== 'Running' || !board.url) {
      board = await env.client.startTensorboard(trainingId);
      onMessage({ kind: 'info', text: t('jobs.tensorboard_starting', { id: trainingId }) });
      for (let i = 0; i < 120 && (board.status !== 'Running' || !board.url); i++) {
        await new Promise(resolve => setTimeout(resolve, 1000));
        board = await env.client.tensorboard(trainingId);
        if (['Failed', 'Error', 'Killed', 'None'].includes(board.status)) {
          break;
        }
      }
    }
    if (board.url && board.status === 'Running') {
      onMessage(null);
      env.openUrl(board.url);
    } else {
      onMessage({ kind: 'error', text: t('kqi.error', { message: board.status }) });
    }
  } catch (err) {
    onMessage({ kind: 'error', text: errorText(t, err) });
  }
}

export function JobsPanel(props: { env: IKqiEnv; kind: JobKind; refresh: number }): JSX.Element {
  const { env, kind } = props;
  const t = env.t;
  const [output, setOutput] = React.useState<number | null>(null);
  const [message, setMessage] = React.useState<Message>(null);
  // Queued jobs' places in the queue come with their details (the list carries none)
  const list = usePage<Job>(
    async page => {
      const result = await env.client.jobsPage(kind, {}, page, PER_PAGE);
      const queued = result.items.filter(job => job.status === 'Queued');
      const details = await Promise.all(queued.map(job => env.client.job(kind, job.id).catch(() => job)));
      const byId = new Map(details.map(d => [d.id, d]));
      return { ...result, items: result.items.map(job => byId.get(job.id) || job) };
    },
    [kind],
    props.refresh
  );
  // while a job of the page runs, look again every few seconds
  const anyActive = (list.data?.items || []).some(job => isActive(job.status));
  React.useEffect(() => {
    if (!anyActive) {
      return;
    }
    const timer = setInterval(() => list.reload(), 3000);
    return () => clearInterval(timer);
  }, [anyActive]);

  async function halt(job: Job) {
    if (!(await env.confirm(t('jobs.halt_confirm', { kind: t(`jobs.${kind}`), id: job.id, name: job.name })))) {
      return;
    }
    try {
      await env.client.halt(kind, job.id);
      setMessage({ kind: 'success', text: t('jobs.halted', { kind: t(`jobs.${kind}`), id: job.id }) });
      list.reload();
    } catch (err) {
      setMessage({ kind: 'error', text: errorText(t, err) });
    }
  }

  return (
    <div className={`kqi-panel kqi-jobs-panel kqi-${kind}-panel`}>
      <MessageBox message={message} />
      {list.error ? <div className="kqi-message kqi-message-error">{errorText(t, list.error)}</div> : null}
      {list.data && !list.data.items.length ? <div className="kqi-muted kqi-empty">{t('jobs.empty')}</div> : null}
      <ul className="kqi-list kqi-job-list">
        {(list.data?.items || []).map(job => {
          const row = jobRow(job, t);
          return (
            <li key={job.id} className="kqi-item kqi-job" data-job-id={job.id} data-status={job.status}>
              <div className="kqi-item-head">
                <span className="kqi-job-name">{row.label}</span>
                <span className={`kqi-status ${row.statusClass}`} data-status={row.status}>
                  {row.status}
                </span>
              </div>
              {row.queue ? <div className="kqi-muted kqi-queue">{row.queue}</div> : null}
              {kind === 'inference' && job.outputValue ? <div className="kqi-muted kqi-output-value">{job.outputValue}</div> : null}
              <div className="kqi-buttons">
                <button className="jp-mod-styled kqi-button kqi-small kqi-job-log" onClick={() => env.openLog(kind, job.id, job.name)}>
                  {t('jobs.log')}
                </button>
                {isActive(job.status) ? (
                  <button className="jp-mod-styled jp-mod-warn kqi-button kqi-small kqi-job-halt" onClick={() => halt(job)}>
                    {t('jobs.halt')}
                  </button>
                ) : null}
                <button className="jp-mod-styled kqi-button kqi-small kqi-job-output-button" onClick={() => setOutput(output === job.id ? null : job.id)}>
                  {t('jobs.output')}
                </button>
                {kind === 'training' ? (
                  <button className="jp-mod-styled kqi-button kqi-small kqi-job-tensorboard" onClick={() => openTensorBoard(env, job.id, setMessage)}>
                    {t('jobs.tensorboard')}
                  </button>
                ) : null}
              </div>
              {output === job.id ? <JobOutput env={env} kind={kind} job={job} /> : null}
            </li>
          );
        })}
      </ul>
      <Pager page={list.data} onPage={list.setPage} t={t} />
    </div>
  );
}

// ===================================================================== the notebook's context
function useContext(env: IKqiEnv, refresh: number) {
  const [context, setContext] = React.useState<NotebookContext | null>(null);
  const [readAt, setReadAt] = React.useState(0);
  const [error, setError] = React.useState<unknown>(null);
  React.useEffect(() => {
    let live = true;
    env.client.context().then(
      c => {
        if (live) {
          setContext(c);
          setReadAt(Date.now());
          setError(null);
        }
      },
      err => live && setError(err)
    );
    return () => {
      live = false;
    };
  }, [refresh]);
  return { context, readAt, error };
}

function DirtyList(props: { lines: ReturnType<typeof dirtyLines> }): JSX.Element | null {
  if (!props.lines.length) {
    return null;
  }
  return (
    <div className="kqi-dirty" role="alert">
      {props.lines.map(line => (
        <div key={line.title}>
          <div>{line.title}</div>
          <ul className="kqi-dirty-files">
            {line.files.map(f => (
              <li key={f}>
                <code>{f}</code>
              </li>
            ))}
          </ul>
          {line.more ? <div className="kqi-muted">{line.more}</div> : null}
        </div>
      ))}
    </div>
  );
}

export function TrainPanel(props: { env: IKqiEnv; refresh: number }): JSX.Element {
  const { env } = props;
  const t = env.t;
  const { context, error } = useContext(env, props.refresh);
  const [form, setForm] = React.useState<TrainForm>(trainDefaults(null));
  const [touched, setTouched] = React.useState(false);
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [conflict, setConflict] = React.useState<ReturnType<typeof dirtyLines> | null>(null);
  const [message, setMessage] = React.useState<Message>(null);
  const [busy, setBusy] = React.useState(false);
  React.useEffect(() => {
    if (context && !touched) {
      setForm(trainDefaults(context));
    }
  }, [context]);

  function field(key: keyof TrainForm, value: string | boolean) {
    setTouched(true);
    setForm(f => ({ ...f, [key]: value }));
  }

  async function submit(allowDirty: boolean) {
    const found = validateTrainForm(form);
    setErrors(found);
    if (Object.keys(found).length) {
      return;
    }
    setBusy(true);
    setMessage(null);
    try {
      const job = await env.client.trainFromHere(trainBody(form, allowDirty));
      setConflict(null);
      setMessage({ kind: 'success', text: t('train.submitted', { id: job.id, name: job.name }) });
      env.showTab('training');
    } catch (err) {
      if (err instanceof KqiError && err.status === 409 && err.body && Array.isArray(err.body.dirty)) {
        setConflict(dirtyLines(dirtyFromConflict(err.body, chosenRepository(context, form.repositoryPath)), t));
      } else {
        setMessage({ kind: 'error', text: errorText(t, err) });
      }
    } finally {
      setBusy(false);
    }
  }

  const git = chosenRepository(context, form.repositoryPath);
  const dirtyNow = conflict ?? dirtyLines(git ? [git] : [], t);
  const input = (key: keyof TrainForm, label: string, type = 'text') => (
    <label className={errors[key] ? 'kqi-invalid' : ''}>
      {label}
      <input
        className={`jp-mod-styled kqi-train-${key}`}
        type={type}
        value={String(form[key])}
        onChange={e => field(key, e.target.value)}
      />
      {errors[key] ? <span className="kqi-field-error">{t(errors[key])}</span> : null}
    </label>
  );
  return (
    <div className="kqi-panel kqi-train-panel">
      {error ? <div className="kqi-message kqi-message-error">{errorText(t, error)}</div> : null}
      <form
        className="kqi-form kqi-train-form"
        onSubmit={e => {
          e.preventDefault();
          void submit(false);
        }}
      >
        <div className="kqi-git-facts">
          {context && context.git.length > 1 ? (
            <label>
              {t('train.repository')}
              <select
                className="jp-mod-styled kqi-train-repositoryPath"
                value={git?.path || ''}
                onChange={e => {
                  setConflict(null);
                  field('repositoryPath', e.target.value);
                }}
              >
                {context.git.map(g => (
                  <option key={g.path} value={g.path}>
                    {g.path}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
          {git ? (
            <dl>
              <dt>{t('train.repository')}</dt>
              <dd className="kqi-train-repository">{git.url || git.path}</dd>
              <dt>{t('train.branch')}</dt>
              <dd className="kqi-train-branch">{git.branch || '-'}</dd>
              <dt>{t('train.commit')}</dt>
              <dd className="kqi-train-commit">{(git.commit || '-').slice(0, 10)}</dd>
            </dl>
          ) : context ? (
            <div className="kqi-muted">{t('train.repo_none')}</div>
          ) : null}
        </div>
        {input('name', t('train.name'))}
        {input('memo', t('train.memo'))}
        {input('entryPoint', t('train.entry_point'))}
        <div className="kqi-row">
          {input('image', t('train.image'))}
          {input('tag', t('train.tag'))}
        </div>
        {input('dataSetId', t('train.dataset'), 'number')}
        <div className="kqi-row">
          {input('cpu', t('train.cpu'), 'number')}
          {input('memory', t('train.memory'), 'number')}
          {input('gpu', t('train.gpu'), 'number')}
        </div>
        <label className="kqi-check">
          <input type="checkbox" className="kqi-train-zip" checked={form.zip} onChange={e => field('zip', e.target.checked)} />
          {t('train.zip')}
        </label>
        <DirtyList lines={dirtyNow} />
        <MessageBox message={message} />
        <div className="kqi-buttons">
          {conflict ? (
            <button type="button" className="jp-mod-styled jp-mod-warn kqi-button kqi-train-submit-anyway" disabled={busy} onClick={() => submit(true)}>
              {t('train.submit_anyway')}
            </button>
          ) : (
            <button type="submit" className="jp-mod-styled jp-mod-accept kqi-button kqi-train-submit" disabled={busy}>
              {t('train.submit')}
            </button>
          )}
        </div>
      </form>
    </div>
  );
}

export function NotebookPanel(props: { env: IKqiEnv; refresh: number }): JSX.Element {
  const { env } = props;
  const t = env.t;
  const { context, readAt, error } = useContext(env, props.refresh);
  const [now, setNow] = React.useState(Date.now());
  React.useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  if (error) {
    return <div className="kqi-message kqi-message-error">{errorText(t, error)}</div>;
  }
  if (!context) {
    return <div className="kqi-muted">{t('kqi.loading')}</div>;
  }
  const rows: Array<[string, string, string]> = [
    ['tenant', t('nb.tenant'), context.tenantName || '-'],
    ['user', t('nb.user'), context.user || '-'],
    ['notebook', t('nb.notebook'), context.notebookId !== null ? String(context.notebookId) : '-'],
    ['dataset', t('nb.dataset'), context.datasetId !== null ? String(context.datasetId) : '-'],
    ['trainings', t('nb.trainings'), context.trainingIds?.length ? context.trainingIds.join(', ') : '-'],
    ['inferences', t('nb.inferences'), context.inferenceIds?.length ? context.inferenceIds.join(', ') : '-'],
    ['image', t('nb.image'), context.image || '-'],
    ['time-left', t('nb.time_left'), formatTimeLeft(secondsLeftNow(context, readAt, now), t)]
  ];
  return (
    <div className="kqi-panel kqi-notebook-panel">
      <dl className="kqi-facts">
        {rows.map(([key, label, value]) => (
          <React.Fragment key={key}>
            <dt>{label}</dt>
            <dd data-key={key}>{value}</dd>
          </React.Fragment>
        ))}
        {(context.git || []).map(g => (
          <React.Fragment key={g.path}>
            <dt>{t('nb.git')}</dt>
            <dd data-key="git">
              {g.path}: {g.branch || '-'} @ {(g.commit || '-').slice(0, 10)} ({g.dirty?.length ? t('nb.git_dirty', { count: g.dirty.length }) : t('nb.git_clean')})
            </dd>
          </React.Fragment>
        ))}
      </dl>
    </div>
  );
}
