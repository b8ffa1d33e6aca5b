/**
 * Follows a job's log the way the web UI does (kqi_services/ui/static/jobs.js followLog):
 * GET <kind>/<id>/log?follow=true&offset=N streams the log from byte N and stays open while
 * the job runs; when the answer ends (the job ended, or the connection dropped) we ask the
 * job's status and, while it is still active, ask again from the bytes we have.
 */
import { isActive, KqiError } from './api';

/** Reads chunks of one answer (a ReadableStreamDefaultReader is one). */
export interface IChunkReader {
  read(): Promise<{ done: boolean; value?: Uint8Array }>;
  cancel?(): Promise<void>;
}

/** Where the log comes from: the log's bytes from an offset, and the job's status. */
export interface ILogSource {
  /** The log from a byte; `signal` aborts the request when the follower stops. */
  open(offset: number, signal: AbortSignal): Promise<IChunkReader>;
  status(): Promise<string>;
}

export type FollowState = 'following' | 'reconnecting' | 'ended' | 'failed' | 'stopped';

export interface IFollowCallbacks {
  text(text: string): void;
  state(state: FollowState, message?: string): void;
}

export interface IFollowOptions {
  /** Milliseconds between an answer's end and the next request while the job runs. */
  retryDelay?: number;
  sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

export class LogFollower {
  private stopped = false;
  private reader: IChunkReader | null = null;
  private readonly abort = new AbortController();
  /** Bytes received so far: where the next request starts. */
  offset = 0;

  constructor(
    private readonly source: ILogSource,
    private readonly callbacks: IFollowCallbacks,
    private readonly options: IFollowOptions = {}
  ) {}

  /** Follow until the job ends (or stop() is called); resolves with the final state. */
  async run(): Promise<FollowState> {
    const decoder = new TextDecoder();
    const sleep = this.options.sleep ?? defaultSleep;
    const delay = this.options.retryDelay ?? 1000;
    this.callbacks.state('following');
    let final: FollowState = 'ended';
    for (;;) {
      if (this.stopped) {
        final = 'stopped';
        break;
      }
      let dropped = false;
      try {
        this.reader = await this.source.open(this.offset, this.abort.signal);
      } catch (err) {
        this.reader = null;
        if (this.stopped) {
          final = 'stopped';
          break;
        }
        if (err instanceof KqiError && err.status >= 400 && err.status < 500) {
          this.callbacks.state('failed', err.message);
          return 'failed';
        }
        dropped = true;
      }
      if (this.reader) {
        try {
          for (;;) {
            const { done, value } = await this.reader.read();
            if (done) {
              break;
            }
            if (value && value.byteLength) {
              this.offset += value.byteLength;
              this.callbacks.text(decoder.decode(value, { stream: true }));
            }
          }
        } catch {
          dropped = true; // ask again from where we are
        }
        this.reader = null;
      }
      if (this.stopped) {
        final = 'stopped';
        break;
      }
      // the answer ends with the job, or when the connection drops: which one?
      let status: string | null = null;
      try {
        status = await this.source.status();
      } catch (err) {
        if (err instanceof KqiError && err.status >= 400 && err.status < 500) {
          this.callbacks.state('failed', err.message);
          return 'failed';
        }
        status = null;
      }
      if (status !== null && !isActive(status)) {
        break;
      }
      if (dropped || status === null) {
        this.callbacks.state('reconnecting');
      }
      await sleep(delay);
      if (!this.stopped && (dropped || status === null)) {
        this.callbacks.state('following');
      }
    }
    const rest = decoder.decode();
    if (rest) {
      this.callbacks.text(rest);
    }
    this.callbacks.state(final);
    return final;
  }

  /** Stop following (the tab was closed). */
  stop(): void {
    this.stopped = true;
    this.abort.abort();
    const reader = this.reader;
    if (reader && reader.cancel) {
      reader.cancel().catch(() => undefined);
    }
  }
}
