/**
 * A job's live log in a main-area tab: a <pre> that grows while the job runs (LogFollower),
 * scrolled along when the reader is at its end.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { JobKind, KqiClient } from './api';
import type { Translate } from './i18n';
import { FollowState, LogFollower } from './logfollower';

export class LogView extends Widget {
  readonly pre: HTMLPreElement;
  readonly label: HTMLDivElement;
  private follower: LogFollower | null = null;
  private received = false;

  constructor(
    private readonly client: KqiClient,
    readonly kind: JobKind,
    readonly jobId: number,
    private readonly t: Translate
  ) {
    super();
    this.addClass('kqi-LogView');
    this.node.dataset.kind = kind;
    this.node.dataset.jobId = String(jobId);
    this.label = document.createElement('div');
    this.label.className = 'kqi-LogView-state';
    this.pre = document.createElement('pre');
    this.pre.className = 'kqi-LogView-log kqi-log-empty';
    this.pre.textContent = t('jobs.log_empty');
    this.node.appendChild(this.label);
    this.node.appendChild(this.pre);
  }

  /** Start following (once). */
  start(): Promise<FollowState> {
    if (this.follower) {
      return Promise.resolve('following');
    }
    const { client, kind, jobId } = this;
    this.follower = new LogFollower(
      {
        open: async (offset, signal) => {
          const response = await client.log(kind, jobId, offset, true, signal);
          if (!response.body) {
            // no streams (old browsers): the whole answer as one chunk
            const buffer = new Uint8Array(await response.arrayBuffer());
            let sent = false;
            return {
              read: async () => (sent ? { done: true } : ((sent = true), { done: false, value: buffer }))
            };
          }
          return response.body.getReader();
        },
        status: async () => (await client.job(kind, jobId)).status
      },
      {
        text: text => this.append(text),
        state: (state, message) => this.setState(state, message)
      }
    );
    return this.follower.run();
  }

  private append(text: string): void {
    if (!text) {
      return;
    }
    const pre = this.pre;
    if (!this.received) {
      this.received = true;
      pre.textContent = '';
      pre.classList.remove('kqi-log-empty');
    }
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
    pre.appendChild(document.createTextNode(text));
    if (atEnd) {
      pre.scrollTop = pre.scrollHeight;
    }
  }

  private setState(state: FollowState, message?: string): void {
    const t = this.t;
    this.node.dataset.following = state === 'following' || state === 'reconnecting' ? 'true' : 'false';
    this.node.dataset.state = state;
    const text: Record<FollowState, string> = {
      following: t('jobs.log_following'),
      reconnecting: t('jobs.log_reconnecting'),
      ended: t('jobs.log_ended'),
      failed: t('jobs.log_failed', { message: message || '' }),
      stopped: ''
    };
    this.label.textContent = text[state];
  }

  dispose(): void {
    if (this.follower) {
      this.follower.stop();
    }
    super.dispose();
  }
}

/** The log's tab: a MainAreaWidget around a LogView, started when made. */
export function createLogTab(client: KqiClient, kind: JobKind, jobId: number, jobName: string, t: Translate): MainAreaWidget<LogView> {
  const content = new LogView(client, kind, jobId, t);
  const widget = new MainAreaWidget({ content });
  widget.id = `kqi-log-${kind}-${jobId}`;
  widget.title.label = `${t('jobs.log')} ${jobId}:${jobName}`;
  widget.title.caption = t('jobs.log_title', { kind: t(`jobs.${kind}`), id: jobId, name: jobName });
  widget.title.closable = true;
  widget.addClass('kqi-LogTab');
  void content.start();
  return widget;
}
