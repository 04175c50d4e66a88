'use strict';
// The client's security options against a real crunchd that wants a bearer
// token on every call and serves TCP over TLS (a certificate made here with the
// openssl CLI) besides its unix socket.

const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { after, before, describe, test } = require('node:test');
const crunch = require('..');
const { startDaemon } = require('../testing/daemon');

const TOKEN = 'node-test-token-0123456789abcdef';

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function makeCertificates(dir) {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  for (const args of [
    ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=crunch-node-test-ca'],
    ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'],
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
     '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'],
  ]) {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  }
}

describe('security', () => {
  let dir;
  let daemon;
  let tcp;
  let ca;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunch-node-sec-'));
    makeCertificates(dir);
    const token = path.join(dir, 'token');
    fs.writeFileSync(token, `${TOKEN}\n`, { mode: 0o600 });
    ca = fs.readFileSync(path.join(dir, 'ca.pem'));
    tcp = `127.0.0.1:${await freePort()}`;
    daemon = await startDaemon({
      workers: 1,
      token: TOKEN,
      extraArgs: ['--listen', tcp],
      extraConfig: ['[server]',
        `tls_cert_file = ${JSON.stringify(path.join(dir, 'server.pem'))}`,
        `tls_key_file = ${JSON.stringify(path.join(dir, 'server.key'))}`,
        `token_file = ${JSON.stringify(token)}`].join('\n'),
    });
  });

  after(async () => {
    if (daemon) {
      const exit = await daemon.stop();
      assert.deepEqual(exit, { code: 0, signal: null }, `crunchd did not exit cleanly:\n${daemon.output()}`);
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the unix socket wants the token on unary calls and streams', async () => {
    const anonymous = new crunch.Client({ address: daemon.address });
    try {
      await assert.rejects(anonymous.status(), (err) => err.codeName === 'UNAUTHENTICATED' &&
                           /requires a bearer token/.test(err.details));
      await assert.rejects(async () => {
        for await (const r of anonymous.stream([{ kind: 'noop' }])) assert.fail(`unexpected ${r}`);
      }, (err) => err.codeName === 'UNAUTHENTICATED');
    } finally {
      anonymous.close();
    }
    const client = new crunch.Client({ address: daemon.address, token: TOKEN });
    try {
      assert.equal((await client.run('fib', '', { n: 10 })).toString(), '55');
      const results = [];
      for await (const r of client.stream([{ kind: 'fib', params: { n: 5 } }])) results.push(r.output.toString());
      assert.deepEqual(results, ['5']);
    } finally {
      client.close();
    }
  });

  test('TCP is TLS: rootCertificates and the token get through', async () => {
    const wrong = new crunch.Client({ address: tcp, rootCertificates: ca, token: 'not-the-token-0123456789' });
    try {
      await assert.rejects(wrong.status(), (err) => err.codeName === 'UNAUTHENTICATED');
    } finally {
      wrong.close();
    }
    const client = new crunch.Client({ address: tcp, rootCertificates: ca, token: TOKEN });
    try {
      assert.equal((await client.run('fib', '', { n: 12 })).toString(), '144');
    } finally {
      client.close();
    }
  });

  test('bad options are refused', () => {
    assert.throws(() => new crunch.Client({ address: tcp, token: ' ' }), /token must be a non-empty string/);
    assert.throws(() => new crunch.Client({ address: tcp, privateKey: Buffer.from('k') }), /go together/);
  });
});
