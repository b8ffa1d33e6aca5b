import { ServerConnection } from '@jupyterlab/services';

import { KqiClient } from '../api';
import { FollowState, LogFollower } from '../logfollower';
import { json, TestServer } from './server';

/**
 * The log route as the kqi service has it: GET .../log?follow=true&offset=N sends the log from
 * byte N and keeps the answer open while the job runs. This server plays a job whose log
 * grows in steps; `drop` ends an answer early (a dropped connection) while the job still runs.
 */
class JobPlay {
  log = Buffer.alloc(0);
  status = 'Running';
  readonly offsets: number[] = [];
  drop = false;
}

function logHandler(play: JobPlay) {
  return async (req: { url: string }, res: import('http').ServerResponse) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname.endsWith('/log')) {
      const offset = Number(url.searchParams.get('offset') || 0);
      play.offsets.push(offset);
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      let sent = offset;
      for (;;) {
        if (sent < play.log.length) {
          res.write(play.log.subarray(sent));
          sent = play.log.length;
        }
        if (play.status !== 'Running' || play.drop) {
          play.drop = false;
          break;
        }
        await new Promise(r => setTimeout(r, 20));
      }
      res.end();
      return;
    }
    json(res, 200, { id: 3, name: 'fit', status: play.status });
  };
}

describe('LogFollower', () => {
  const server = new TestServer();
  let client: KqiClient;
  beforeAll(async () => {
    await server.start();
    client = new KqiClient({ settings: ServerConnection.makeSettings({ baseUrl: server.base }) });
  });
  afterAll(() => server.stop());

  function follow(kind: 'training' | 'inference' = 'training') {
    const texts: string[] = [];
    const states: FollowState[] = [];
    const follower = new LogFollower(
      {
        open: async (offset, signal) => (await client.log(kind, 3, offset, true, signal)).body!.getReader(),
        status: async () => (await client.job(kind, 3)).status
      },
      { text: t => texts.push(t), state: s => states.push(s) },
      { retryDelay: 10 }
    );
    return { follower, texts, states };
  }

  it('shows the log as it grows and stops when the job ends', async () => {
    const play = new JobPlay();
    server.handler = logHandler(play);
    const { follower, texts, states } = follow();
    const done = follower.run();
    play.log = Buffer.from('epoch 1\n');
    await new Promise(r => setTimeout(r, 150));
    expect(texts.join('')).toBe('epoch 1\n');
    play.log = Buffer.concat([play.log, Buffer.from('epoch 2\n')]);
    await new Promise(r => setTimeout(r, 150));
    expect(texts.join('')).toBe('epoch 1\nepoch 2\n');
    play.log = Buffer.concat([play.log, Buffer.from('done\n')]);
    play.status = 'Completed';
    expect(await done).toBe('ended');
    expect(texts.join('')).toBe('epoch 1\nepoch 2\ndone\n');
    expect(states[0]).toBe('following');
    expect(states[states.length - 1]).toBe('ended');
    expect(server.received.some(r => r.url.includes('/kqi/api/v2/training/3/log?follow=true&offset=0'))).toBe(true);
  });

  it('asks again from the bytes it has when an answer ends while the job runs', async () => {
    const play = new JobPlay();
    server.handler = logHandler(play);
    const { follower, texts } = follow('inference');
    // a multi-byte character cut by the drop: the decoder keeps its first bytes
    const line = Buffer.from('学習 1\n');
    play.log = line.subarray(0, 2);
    const done = follower.run();
    await new Promise(r => setTimeout(r, 80));
    play.drop = true;
    await new Promise(r => setTimeout(r, 80));
    play.log = Buffer.concat([line, Buffer.from('学習 2\n')]);
    await new Promise(r => setTimeout(r, 80));
    play.status = 'Failed';
    expect(await done).toBe('ended');
    expect(texts.join('')).toBe('学習 1\n学習 2\n');
    expect(play.offsets[0]).toBe(0);
    expect(play.offsets).toContain(2);
    expect(follower.offset).toBe(play.log.length);
  });

  it('gives up on a 4xx (a job of another tenant is a 404)', async () => {
    server.handler = (_req, res) => json(res, 404, { message: 'No training 3.' });
    const { follower, states } = follow();
    expect(await follower.run()).toBe('failed');
    expect(states).toEqual(['following', 'failed']);
  });

  it('stops when told (the tab closed)', async () => {
    const play = new JobPlay();
    server.handler = logHandler(play);
    const { follower, states } = follow();
    const done = follower.run();
    await new Promise(r => setTimeout(r, 60));
    follower.stop();
    expect(await done).toBe('stopped');
    expect(states[states.length - 1]).toBe('stopped');
    play.status = 'Completed';
  });
});
