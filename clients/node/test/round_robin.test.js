'use strict';
// An address list: calls balanced round-robin over two daemons.

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');
const crunch = require('..');
const { startDaemon } = require('../testing/daemon');

describe('round-robin over two daemons', () => {
  let daemons = [];
  let client;

  before(async () => {
    daemons = await Promise.all([startDaemon(), startDaemon()]);
    client = new crunch.Client({ address: daemons.map((d) => d.address).join(',') });
  });

  after(async () => {
    client?.close();
    const exits = await Promise.all(daemons.map((d) => d.stop()));
    exits.forEach((exit, i) => assert.deepEqual(exit, { code: 0, signal: null },
                                                `crunchd ${i} did not exit cleanly:\n${daemons[i].output()}`));
  });

  test('200 runs are shared fairly', async () => {
    assert.deepEqual(client.addresses, daemons.map((d) => d.address));
    const runs = [];
    for (let i = 0; i < 200; i++) runs.push(client.run('fib', '', { n: i % 25 }));
    const outputs = await Promise.all(runs);
    assert.equal(outputs.length, 200);
    assert.equal(outputs[24].toString(), '46368');

    for (const d of daemons) {
      const s = await client.status({ address: d.address });
      assert.ok(s.counters.accepted >= 60 && s.counters.accepted <= 140,
                `${d.address} accepted ${s.counters.accepted} of 200`);
    }
  });

  test('submitted ids name their daemon; wait and cancel find it', async () => {
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await client.submit('fib', '', { n: 20 }));
    const owners = new Set(ids.map((id) => id.split('@')[1]));
    assert.deepEqual([...owners].sort(), daemons.map((d) => d.address).sort());
    for (const id of ids) assert.equal((await client.wait(id)).toString(), '6765');
    assert.equal(await client.cancel(ids[0]), 'done');
    await assert.rejects(client.wait(`1@unix:/not/in/the/list.sock`), TypeError);
    // A bare id could belong to either daemon: refused, not sent to the first.
    await assert.rejects(client.wait(ids[0].split('@')[0]), /does not say which daemon holds it/);
    await assert.rejects(client.cancel(ids[0].split('@')[0]), /does not say which daemon holds it/);
  });

  test('streams alternate between the daemons', async () => {
    const before = await Promise.all(daemons.map((d) => client.status({ address: d.address })));
    for (let s = 0; s < 2; s++) {
      let n = 0;
      for await (const r of client.stream(Array.from({ length: 10 }, () => ({ kind: 'noop' })))) n += r.ok ? 1 : 0;
      assert.equal(n, 10);
    }
    const afterwards = await Promise.all(daemons.map((d) => client.status({ address: d.address })));
    assert.deepEqual(afterwards.map((s, i) => s.counters.accepted - before[i].counters.accepted), [10, 10]);
  });

  test('a dead address in the list is skipped once it has failed', async () => {
    const mixed = new crunch.Client({ address: `unix:/nonexistent/crunchd.sock,${daemons[0].address}` });
    try {
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => mixed.run('noop', 'x')));
      const failed = results.filter((r) => r.status === 'rejected');
      for (const f of failed) assert.ok(f.reason instanceof crunch.ConnectionError, String(f.reason));
      assert.ok(failed.length <= 5, `${failed.length} of 10 failed`);
      // Now that the dead one is known to fail, every call goes to the live one.
      for (let i = 0; i < 6; i++) assert.equal((await mixed.run('noop', 'y')).toString(), 'y');
    } finally {
      mixed.close();
    }
  });
});
