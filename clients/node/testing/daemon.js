'use strict';
// Starts the real crunchd for the tests: the binary named by $CRUNCHD, on a
// temporary unix socket, with 2 workers and a config that lets http.get reach
// 127.0.0.1. (Outside test/ so `node --test test/` does not run it as a test.)

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client } = require('..');

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 30_000;

/**
 * @typedef {object} Daemon
 * @property {string} address  "unix:/tmp/.../crunchd.sock"
 * @property {string} dir  its temporary directory (also its [io] data_dir)
 * @property {import('node:child_process').ChildProcess} process
 * @property {() => string} output  what it printed so far (stdout and stderr)
 * @property {() => Promise<{code: number | null, signal: string | null}>} stop  SIGTERM, then its exit
 */

/**
 * `extraArgs` go to crunchd's command line; `token` is the bearer token the
 * readiness check sends (when extraConfig sets [server] token_file).
 * @param {{workers?: number, extraConfig?: string, extraArgs?: string[], token?: string}} [options]
 * @returns {Promise<Daemon>}
 */
async function startDaemon({ workers = 2, extraConfig = '', extraArgs = [], token } = {}) {
  const binary = process.env.CRUNCHD;
  if (!binary) {
    throw new Error('set CRUNCHD to the crunchd binary, e.g. CRUNCHD=$PWD/../../build/bin/crunchd ' +
                    '(ctest sets it)');
  }
  if (!fs.existsSync(binary)) throw new Error(`CRUNCHD=${binary} does not exist; build crunchd first`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crunch-node-'));
  const socket = path.join(dir, 'crunchd.sock');
  const config = path.join(dir, 'crunchd.toml');
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir);
  fs.writeFileSync(config, [
    '[io]',
    'http_allow = ["127.0.0.1"]',
    `data_dir = ${JSON.stringify(dataDir)}`,
    extraConfig,
    '',
  ].join('\n'));

  const child = spawn(binary, ['--config', config, '--listen', `unix:${socket}`,
                               '--workers', String(workers), '--log-level', 'warn', ...extraArgs],
                      { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b) => { output += b; });
  child.stderr.on('data', (b) => { output += b; });
  /** @type {Promise<{code: number | null, signal: string | null}>} */
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let exit = null;
  exited.then((e) => { exit = e; });

  const address = `unix:${socket}`;
  const started = Date.now();
  while (true) {
    if (exit) {
      throw new Error(`crunchd exited before it answered (code ${exit.code}, signal ${exit.signal}):\n${output}`);
    }
    // A fresh client each try: a grpc-js channel that failed to connect backs off for a second.
    const client = new Client({ address, token });
    try {
      await client.status();
      break;
    } catch (err) {
      if (Date.now() - started > READY_TIMEOUT_MS) {
        child.kill('SIGKILL');
        throw new Error(`crunchd did not answer Status within ${READY_TIMEOUT_MS} ms (${err.message}):\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      client.close();
    }
  }

  return {
    address,
    dir,
    process: child,
    output: () => output,
    async stop() {
      if (!exit) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const result = await exited;
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
      return result;
    },
  };
}

module.exports = { startDaemon };
