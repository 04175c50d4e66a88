'use strict';
// The client against one real crunchd: answers, error classes, submit/wait/cancel,
// status and kinds, http.get against a local HTTP server.

const assert = require('node:assert/strict');
const http = require('node:http');
const { after, before, describe, test } = require('node:test');
const crunch = require('..');
const { startDaemon } = require('../testing/daemon');

describe('crunch-client against crunchd', () => {
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

  test('run returns known answers', async () => {
    assert.equal((await client.run('fib', '', { n: 30 })).toString(), '832040');
    assert.equal((await client.run('sha256', 'abc')).toString(),
                 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const payload = Buffer.from([0, 1, 2, 255]);
    assert.deepEqual(await client.run('noop', payload), payload);
    assert.equal((await client.run('primes', undefined, { n: 100 })).toString(), '25');
  });

  test('runResult gives the whole result', async () => {
    const r = await client.runResult('fib', null, { n: 10 });
    assert.equal(r.output.toString(), '55');
    assert.equal(r.code, 0);
    assert.equal(r.codeName, 'OK');
    assert.equal(r.ok, true);
    assert.equal(r.pool, 'cpu');
    assert.match(r.taskId, /^\d+$/);
    assert.ok(r.workerPid > 0);
    assert.equal(typeof r.runUs, 'number');
  });

  test('zstd round trip keeps bytes intact', async () => {
    const input = Buffer.alloc(1 << 20, 'crunch ');
    const packed = await client.run('zstd.compress', input, { level: 5 });
    assert.ok(packed.length < input.length / 10);
    assert.deepEqual(await client.run('zstd.decompress', packed), input);
  });

  test('an unknown kind is a NotFoundError that lists the kinds', async () => {
    await assert.rejects(client.run('no.such.kind'), (err) => {
      assert.ok(err instanceof crunch.NotFoundError);
      assert.ok(err instanceof crunch.TaskError);
      assert.equal(err.code, 5);
      assert.equal(err.codeName, 'NOT_FOUND');
      assert.match(err.details, /fib/);
      return true;
    });
  });

  test('a bad parameter is an InvalidArgumentError naming it', async () => {
    await assert.rejects(client.run('fib', '', { n: 99 }), (err) => {
      assert.ok(err instanceof crunch.InvalidArgumentError);
      assert.equal(err.code, 3);
      assert.match(err.details, /'n'.*0\.\.45/);
      return true;
    });
  });

  test('a task past its timeoutMs is a DeadlineExceededError', async () => {
    await assert.rejects(client.run('spin', '', { ms: 10_000 }, { timeoutMs: 100 }), (err) => {
      assert.ok(err instanceof crunch.DeadlineExceededError);
      assert.equal(err.codeName, 'DEADLINE_EXCEEDED');
      return true;
    });
  });

  test('a payload over max_payload_bytes is a ResourceExhaustedError', async () => {
    // startDaemon() does not change [limits]; the default is 16 MiB.
    await assert.rejects(client.run('noop', Buffer.alloc(16 * 1024 * 1024 + 1)), crunch.ResourceExhaustedError);
  });

  test('http.get to a host outside http_allow is a PermissionDeniedError', async () => {
    await assert.rejects(client.run('http.get', '', { url: 'http://localhost:1/' }), crunch.PermissionDeniedError);
  });

  test('submit, wait and cancel', async () => {
    const id = await client.submit('fib', '', { n: 25 });
    assert.equal(typeof id, 'string');
    assert.equal((await client.wait(id)).toString(), '75025');
    assert.equal((await client.waitResult(BigInt(id))).output.toString(), '75025', 'results are kept');
    assert.equal(await client.cancel(id), 'done');

    const slow = await client.submit('sleep', '', { ms: 30_000 });
    assert.ok(['queued', 'running'].includes(await client.cancel(slow)));
    await assert.rejects(client.wait(slow), (err) => {
      assert.ok(err instanceof crunch.CancelledError);
      assert.equal(err.code, 1);
      assert.equal(err.taskId, slow);
      return true;
    });

    const spinning = await client.submit('spin', '', { ms: 30_000 });
    await assert.rejects(client.wait(spinning, { timeoutMs: 200 }), crunch.DeadlineExceededError);
    assert.ok(['queued', 'running'].includes(await client.cancel(spinning)));
    await assert.rejects(client.wait(spinning), crunch.CancelledError);
  });

  test('waiting for an unknown task is a NotFoundError', async () => {
    await assert.rejects(client.wait('987654321'), crunch.NotFoundError);
    await assert.rejects(client.wait('abc'), TypeError);
  });

  test('the same idempotency key returns the same task', async () => {
    const a = await client.submit('noop', 'x', {}, { idempotencyKey: 'node-test-key' });
    const b = await client.submit('noop', 'x', {}, { idempotencyKey: 'node-test-key' });
    assert.equal(a, b);
  });

  test('an AbortSignal cancels the call', async () => {
    const controller = new AbortController();
    const other = client.run('sleep', '', { ms: 300 });
    // crunchd does not stop the task of a cancelled Run call, so keep it short.
    const aborted = client.run('sleep', '', { ms: 1500 }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(aborted, crunch.CancelledError);
    // Another call on the same channel is unaffected.
    assert.equal((await other).length, 0);
  });

  test('status has workers, pools and counters', async () => {
    const s = await client.status();
    assert.equal(typeof s.version, 'string');
    assert.ok(s.pid > 0);
    assert.equal(s.draining, false);
    assert.equal(s.workers.length, 2);
    for (const w of s.workers) {
      assert.ok(w.pid > 0);
      assert.ok(['starting', 'idle', 'busy', 'restarting'].includes(w.state), w.state);
      assert.equal(typeof w.tasksDone, 'number');
    }
    assert.deepEqual(s.pools.map((p) => p.name).sort(), ['cpu', 'io']);
    const cpu = s.pools.find((p) => p.name === 'cpu');
    assert.equal(cpu.size, 2);
    assert.equal(typeof cpu.latency.p50Us, 'number');
    assert.ok(s.counters.accepted > 0);
    assert.ok(s.counters.completed > 0);
    assert.ok(s.counters.rejected > 0);
    assert.equal(typeof s.counters.failedByCode, 'object');
    assert.ok(s.counters.failedByCode.DEADLINE_EXCEEDED >= 1);
  });

  test('kinds lists every built-in kind with its parameters', async () => {
    const kinds = await client.kinds();
    const names = kinds.map((k) => k.name);
    for (const k of ['noop', 'spin', 'fib', 'sha256', 'zstd.compress', 'zstd.decompress', 'primes',
                     'sleep', 'http.get', 'file.read', 'file.write', 'dns.resolve']) {
      assert.ok(names.includes(k), `missing ${k} in ${names}`);
    }
    const fib = kinds.find((k) => k.name === 'fib');
    assert.equal(fib.pool, 'cpu');
    assert.deepEqual(fib.params.map((p) => [p.name, p.type, p.required, p.min, p.max]), [['n', 'int', true, 0, 45]]);
    assert.equal(kinds.find((k) => k.name === 'http.get').pool, 'io');
  });

  test('http.get fetches from a local server', async (t) => {
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from ${req.url}`);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const { port } = server.address();
    const body = await client.run('http.get', '', { url: `http://127.0.0.1:${port}/crunch?x=1` });
    assert.equal(body.toString(), 'hello from /crunch?x=1');
  });

  test('file.write then file.read', async () => {
    assert.equal((await client.run('file.write', 'some bytes', { path: 'node.txt' })).toString(), '10');
    assert.equal((await client.run('file.read', '', { path: 'node.txt', offset: 5 })).toString(), 'bytes');
    await assert.rejects(client.run('file.read', '', { path: '../outside' }), crunch.PermissionDeniedError);
    await assert.rejects(client.run('file.read', '', { path: 'missing.txt' }), crunch.NotFoundError);
  });
});

describe('connection failures', () => {
  test('name the address and suggest systemctl', async () => {
    const address = 'unix:/nonexistent/crunchd-node-test.sock';
    const client = new crunch.Client({ address });
    try {
      await assert.rejects(client.run('fib', '', { n: 1 }), (err) => {
        assert.ok(err instanceof crunch.ConnectionError);
        assert.ok(err instanceof crunch.UnavailableError);
        assert.equal(err.code, 14);
        assert.equal(err.address, address);
        assert.match(err.message, /unix:\/nonexistent\/crunchd-node-test\.sock/);
        assert.match(err.message, /systemctl status crunchd/);
        return true;
      });
    } finally {
      client.close();
    }
  });
});

describe('module', () => {
  test('ES modules can import every name', async () => {
    const esm = await import('../lib/index.js');
    for (const name of Object.keys(crunch)) assert.equal(esm[name], crunch[name], name);
  });
});

describe('addresses', () => {
  test('the default follows rpc/default_address.cc', () => {
    assert.equal(crunch.defaultAddress(0, '/run/user/0'), 'unix:/run/crunchd/crunchd.sock');
    assert.equal(crunch.defaultAddress(1000, '/run/user/1000'), 'unix:/run/user/1000/crunchd.sock');
    assert.equal(crunch.defaultAddress(1000, 'relative'), 'unix:/tmp/crunchd-1000/crunchd.sock');
    assert.equal(crunch.defaultAddress(1000, ''), 'unix:/tmp/crunchd-1000/crunchd.sock');
    assert.equal(crunch.defaultAddress(1000, undefined), 'unix:/tmp/crunchd-1000/crunchd.sock');
  });

  test('lists split like crunchctl', () => {
    assert.deepEqual(crunch.parseAddressList('/a.sock'), ['unix:/a.sock']);
    assert.deepEqual(crunch.parseAddressList('unix:///a.sock'), ['unix:/a.sock']);
    assert.deepEqual(crunch.parseAddressList('unix:/a.sock, unix:/b.sock'), ['unix:/a.sock', 'unix:/b.sock']);
    assert.deepEqual(crunch.parseAddressList('unix:/a.sock,b.sock'), ['unix:/a.sock', 'unix:b.sock']);
    assert.deepEqual(crunch.parseAddressList('ipv4:10.0.0.1:1,10.0.0.2:1'), ['ipv4:10.0.0.1:1', '10.0.0.2:1']);
    assert.deepEqual(crunch.parseAddressList('localhost:5000'), ['localhost:5000']);
    assert.throws(() => crunch.parseAddressList(''), TypeError);
    assert.throws(() => crunch.parseAddressList('unix:/a.sock,,unix:/b.sock'), /empty entry/);
  });
});
