'use strict';
// stream(): many tasks on one RunStream, results in completion order with their tags.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const crunch = require('..');
const { startDaemon } = require('../testing/daemon');

const FIB = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181];

describe('stream', () => {
  let daemon;
  let client;

  before(async () => {
    daemon = await startDaemon();
    client = new crunch.Client({ address: daemon.address });
  });

  after(async () => {
    client?.close();
    if (daemon) {
      const exit = await daemon.stop();
      assert.deepEqual(exit, { code: 0, signal: null }, `crunchd did not exit cleanly:\n${daemon.output()}`);
    }
  });

  test('1000 tasks: every tag exactly once, failures as results', async () => {
    const N = 1000;
    const requests = [];
    for (let i = 0; i < N; i++) {
      if (i % 100 === 7) requests.push({ kind: 'no.such.kind' });
      else if (i % 100 === 42) requests.push({ kind: 'fib', params: { n: 46 } });
      else if (i % 2 === 0) requests.push({ kind: 'fib', params: { n: i % 20 } });
      else requests.push({ kind: 'noop', payload: `task ${i}` });
    }
    const seen = new Map();
    for await (const r of client.stream(requests)) {
      assert.ok(Number.isInteger(r.tag) && r.tag >= 0 && r.tag < N, `bad tag ${r.tag}`);
      assert.ok(!seen.has(r.tag), `tag ${r.tag} twice`);
      seen.set(r.tag, r);
    }
    assert.equal(seen.size, N);
    for (const [i, r] of seen) {
      if (i % 100 === 7) {
        assert.equal(r.codeName, 'NOT_FOUND');
        assert.ok(crunch.errorForResult(r) instanceof crunch.NotFoundError);
      } else if (i % 100 === 42) {
        assert.equal(r.code, 3);
        assert.match(r.error, /'n'/);
        assert.ok(crunch.errorForResult(r) instanceof crunch.InvalidArgumentError);
      } else {
        assert.equal(r.code, 0, `tag ${i}: ${r.error}`);
        assert.equal(crunch.errorForResult(r), null);
        assert.equal(r.output.toString(), i % 2 === 0 ? String(FIB[i % 20]) : `task ${i}`);
      }
    }
  });

  test('results come in completion order', async () => {
    const order = [];
    for await (const r of client.stream([{ kind: 'sleep', params: { ms: 300 } }, { kind: 'noop', payload: 'fast' }])) {
      order.push(r.tag);
    }
    assert.deepEqual(order, [1, 0]);
  });

  test('an async generator of requests, with per-request timeouts', async () => {
    async function* requests() {
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setImmediate(r));
        yield i === 5 ? { kind: 'sleep', params: { ms: 5000 }, timeoutMs: 50 } : { kind: 'sha256', payload: String(i) };
      }
    }
    const codes = new Map();
    for await (const r of client.stream(requests())) codes.set(r.tag, r.codeName);
    assert.equal(codes.size, 20);
    assert.equal(codes.get(5), 'DEADLINE_EXCEEDED');
    assert.equal([...codes.values()].filter((c) => c === 'OK').length, 19);
  });

  test('leaving the loop early cancels the stream', async () => {
    let n = 0;
    for await (const r of client.stream(Array.from({ length: 50 }, () => ({ kind: 'noop' })))) {
      assert.equal(r.code, 0);
      if (++n === 3) break;
    }
    assert.equal(n, 3);
    // The client still works afterwards.
    assert.equal((await client.run('fib', '', { n: 12 })).toString(), '144');
  });

  test('a bad request fails the iterator', async () => {
    await assert.rejects(async () => {
      for await (const r of client.stream([{ kind: 'noop' }, { kind: 42 }])) void r;
    }, TypeError);
  });

  test('an AbortSignal ends the stream with a CancelledError', async () => {
    const controller = new AbortController();
    const results = [];
    await assert.rejects(async () => {
      const requests = [{ kind: 'noop' }, { kind: 'sleep', params: { ms: 1000 } }];
      for await (const r of client.stream(requests, { signal: controller.signal })) {
        results.push(r);
        controller.abort();
      }
    }, crunch.CancelledError);
    assert.deepEqual(results.map((r) => r.tag), [0]);
  });

  test('an empty stream yields nothing', async () => {
    const results = [];
    for await (const r of client.stream([])) results.push(r);
    assert.deepEqual(results, []);
  });
});
