'use strict';
// Client: promise methods over crunch.v1.Crunch (rpc/crunch/v1/crunch.proto).
//
// One grpc-js channel per daemon. grpc-js takes `unix:` targets but not lists
// of them, and gRPC's own round_robin suits a short-lived client badly (the
// first subchannel to connect gets everything), so an address list is balanced
// here: each call (and each stream) goes to the next daemon in turn, skipping
// one whose channel is in TRANSIENT_FAILURE while another is not.
// crunchctl does the same (clients/cli/connection.h).
//
// Security: unix sockets are plaintext (crunchd checks the caller's uid/gid
// there); other targets use TLS when given `credentials` or `rootCertificates`
// (crunchd serves TCP only over TLS). A `token` goes with every call as the
// metadata "authorization: Bearer TOKEN" ([server] token_file).
//
// Numbers: task ids are uint64 and are kept exact as decimal strings (with an
// address list, "ID@ADDRESS": ids are per daemon); every
// other 64-bit field (counters, microseconds, bytes, tags) is turned into a
// Number, exact up to 2^53.

const grpc = require('@grpc/grpc-js');
const { defaultAddress, parseAddressList } = require('./address');
const { loadCrunchService } = require('./proto');
const { codeName, errorForCode, ConnectionError } = require('./errors');

/**
 * @typedef {Buffer | Uint8Array | string} Payload  a string is sent as UTF-8
 * @typedef {Record<string, string | number | bigint | boolean>} Params  values are sent as strings
 * @typedef {object} TaskOptions
 * @property {number} [timeoutMs]  the task's timeout; 0 or unset = the pool's default
 * @property {number} [priority]  higher runs first
 * @property {string} [idempotencyKey]  submit(): the same key returns the same task while it is kept
 * @property {AbortSignal} [signal]  aborting cancels the call (CancelledError)
 *
 * @typedef {object} TaskResult
 * @property {string} taskId  uint64, as a decimal string
 * @property {number} tag  the request's tag (in stream(): its index)
 * @property {number} code  gRPC status code, 0 = OK
 * @property {string} codeName  e.g. "OK", "NOT_FOUND"
 * @property {boolean} ok  code === 0
 * @property {string} error  the daemon's message when code != 0
 * @property {Buffer} output
 * @property {string} pool  "cpu" or "io"
 * @property {number} workerPid  the worker process that ran a CPU task
 * @property {number} queueUs  acceptance to dispatch
 * @property {number} runUs  dispatch to completion
 *
 * @typedef {object} StreamRequest
 * @property {string} kind
 * @property {Payload} [payload]
 * @property {Params} [params]
 * @property {number} [timeoutMs]
 * @property {number} [priority]
 *
 * @typedef {object} ParamInfo
 * @property {string} name
 * @property {string} type  "int" or "string"
 * @property {string} defaultValue
 * @property {boolean} required
 * @property {number} min  ints: allowed range, inclusive
 * @property {number} max
 * @property {string} description
 *
 * @typedef {object} KindInfo
 * @property {string} name
 * @property {string} pool  "cpu" or "io"
 * @property {string} description
 * @property {ParamInfo[]} params
 *
 * @typedef {object} DaemonStatus
 * @property {string} version
 * @property {number} pid
 * @property {number} uptimeMs
 * @property {boolean} draining
 * @property {{slot: number, pid: number, state: string, tasksDone: number, restarts: number,
 *             recycles: number, currentKind: string, rssBytes: number}[]} workers
 * @property {{name: string, size: number, busy: number, queued: number, queueCapacity: number,
 *             latency: {p50Us: number, p90Us: number, p99Us: number, maxUs: number, samples: number}}[]} pools
 * @property {{accepted: number, completed: number, failed: number, rejected: number, cancelled: number,
 *             failedByCode: Record<string, number>}} counters
 */

// Results of stream() buffered before the stream is paused until the caller catches up.
const STREAM_HIGH_WATER = 256;

/** @param {Payload | undefined | null} payload @returns {Buffer} */
function toBuffer(payload) {
  if (payload === undefined || payload === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(payload)) return payload;
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  throw new TypeError(`crunch-client: payload must be a Buffer, Uint8Array or string, got ${typeof payload}`);
}

/** @param {Params | undefined | null} params @returns {Record<string, string>} */
function toParams(params) {
  /** @type {Record<string, string>} */
  const out = {};
  if (params === undefined || params === null) return out;
  if (typeof params !== 'object') {
    throw new TypeError(`crunch-client: params must be an object of name -> value, got ${typeof params}`);
  }
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    out[name] = String(value);
  }
  return out;
}

/**
 * @param {string} kind @param {Payload | undefined} payload @param {Params | undefined} params
 * @param {TaskOptions | StreamRequest} options @param {number} tag
 */
function toRequest(kind, payload, params, options, tag) {
  if (typeof kind !== 'string' || kind === '') {
    throw new TypeError(`crunch-client: kind must be a non-empty string such as 'fib', got ${String(kind)}`);
  }
  return {
    kind,
    payload: toBuffer(payload),
    params: toParams(params),
    tag: String(tag),
    timeoutMs: options.timeoutMs ?? 0,
    priority: options.priority ?? 0,
    idempotencyKey: /** @type {TaskOptions} */ (options).idempotencyKey ?? '',
  };
}

/**
 * Splits "123" or "123@unix:/a.sock" (what submit() returns with an address list).
 * @param {string | number | bigint} id @returns {{taskId: string, target: string | undefined}}
 */
function parseTaskId(id) {
  const s = String(id);
  const m = /^(\d+)(?:@(.+))?$/.exec(s);
  if (!m) {
    throw new TypeError(`crunch-client: a task id is an unsigned integer, or 'ID@ADDRESS' as submit() ` +
                        `returns with an address list; got '${s}'`);
  }
  return { taskId: m[1], target: m[2] };
}

/** @returns {TaskResult} */
function toResult(r) {
  return {
    taskId: r.taskId,
    tag: Number(r.tag),
    code: r.code,
    codeName: codeName(r.code),
    ok: r.code === 0,
    error: r.error,
    output: r.output,
    pool: r.pool,
    workerPid: r.workerPid,
    queueUs: Number(r.queueUs),
    runUs: Number(r.runUs),
  };
}

/** @returns {DaemonStatus} */
function toStatus(s) {
  const latency = (l) => ({
    p50Us: Number(l?.p50Us ?? 0),
    p90Us: Number(l?.p90Us ?? 0),
    p99Us: Number(l?.p99Us ?? 0),
    maxUs: Number(l?.maxUs ?? 0),
    samples: Number(l?.samples ?? 0),
  });
  const c = s.counters ?? {};
  return {
    version: s.version,
    pid: s.pid,
    uptimeMs: Number(s.uptimeMs),
    draining: s.draining,
    workers: s.workers.map((w) => ({
      slot: w.slot,
      pid: w.pid,
      state: w.state,
      tasksDone: Number(w.tasksDone),
      restarts: w.restarts,
      recycles: w.recycles,
      currentKind: w.currentKind,
      rssBytes: Number(w.rssBytes),
    })),
    pools: s.pools.map((p) => ({
      name: p.name,
      size: p.size,
      busy: p.busy,
      queued: p.queued,
      queueCapacity: p.queueCapacity,
      latency: latency(p.latency),
    })),
    counters: {
      accepted: Number(c.accepted ?? 0),
      completed: Number(c.completed ?? 0),
      failed: Number(c.failed ?? 0),
      rejected: Number(c.rejected ?? 0),
      cancelled: Number(c.cancelled ?? 0),
      failedByCode: Object.fromEntries(Object.entries(c.failedByCode ?? {}).map(([k, v]) => [k, Number(v)])),
    },
  };
}

/** @returns {KindInfo[]} */
function toKinds(reply) {
  return reply.kinds.map((k) => ({
    name: k.name,
    pool: k.pool,
    description: k.description,
    params: k.params.map((p) => ({
      name: p.name,
      type: p.type,
      defaultValue: p.defaultValue,
      required: p.required,
      min: Number(p.min),
      max: Number(p.max),
      description: p.description,
    })),
  }));
}

/**
 * The error a stream() result stands for, or null when it succeeded.
 * @param {TaskResult} result
 */
function errorForResult(result) {
  if (result.code === 0) return null;
  return errorForCode(result.code, result.error, { taskId: result.taskId, tag: result.tag });
}

/**
 * A connection to one crunchd, or to several balanced round-robin.
 *
 * Thread safety: none needed (one JS thread); calls may overlap freely.
 */
class Client {
  /** @type {{target: string, stub: any}[]} */
  #daemons;
  #next = 0;
  #closed = false;
  /** @type {string | null} "Bearer TOKEN", or null without a token */
  #authorization = null;

  /**
   * @param {object} [options]
   * @param {string} [options.address]  a gRPC target ("unix:/path", "host:port", a bare path) or a
   *   comma-separated list of them to balance round-robin; default: crunchd's default address
   *   (unix:/run/crunchd/crunchd.sock as root, else unix:$XDG_RUNTIME_DIR/crunchd.sock, else
   *   unix:/tmp/crunchd-$UID/crunchd.sock)
   * @param {string} [options.protoPath]  crunch.proto to load (default: $CRUNCH_PROTO or the repository's)
   * @param {Record<string, unknown>} [options.channelOptions]  extra grpc-js channel options
   * @param {string} [options.token]  crunchd's bearer token, sent with every call
   * @param {import('@grpc/grpc-js').ChannelCredentials} [options.credentials]  TLS for non-unix
   *   targets, e.g. grpc.credentials.createSsl(...); or give the PEM Buffers below
   * @param {Buffer} [options.rootCertificates]  the CA that signed crunchd's certificate (TLS)
   * @param {Buffer} [options.privateKey]  with certChain: a client certificate, for a crunchd
   *   with [server] tls_client_ca_file
   * @param {Buffer} [options.certChain]
   */
  constructor({ address, protoPath, channelOptions, token, credentials, rootCertificates,
                privateKey, certChain } = {}) {
    const Crunch = loadCrunchService(protoPath);
    const targets = parseAddressList(address ?? defaultAddress());
    const opts = {
      // Payloads go up to 1 GiB and outputs up to [limits] max_output_bytes; the daemon enforces them.
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      ...channelOptions,
    };
    if (token !== undefined && (typeof token !== 'string' || token.trim() === '')) {
      throw new TypeError("token must be a non-empty string (the text of crunchd's token_file)");
    }
    this.#authorization = token === undefined ? null : `Bearer ${token.trim()}`;
    if (credentials && (rootCertificates || privateKey || certChain)) {
      throw new TypeError('give either credentials or rootCertificates/privateKey/certChain, not both');
    }
    if (!privateKey !== !certChain) {
      throw new TypeError('privateKey and certChain go together: give both or neither');
    }
    const tls = credentials ?? (rootCertificates || privateKey
      ? grpc.credentials.createSsl(rootCertificates ?? null, privateKey ?? null, certChain ?? null)
      : null);
    this.#daemons = targets.map((target) => ({
      target,
      stub: new Crunch(target, tls && !target.startsWith('unix')
        ? tls : grpc.credentials.createInsecure(), opts),
    }));
    this.#next = 0;
  }

  /** The gRPC targets this client talks to, one per daemon. @returns {string[]} */
  get addresses() {
    return this.#daemons.map((d) => d.target);
  }

  /**
   * Runs one task and returns its output.
   * @param {string} kind @param {Payload} [payload] @param {Params} [params] @param {TaskOptions} [options]
   * @returns {Promise<Buffer>}
   */
  async run(kind, payload, params, options) {
    return (await this.runResult(kind, payload, params, options)).output;
  }

  /**
   * Runs one task and returns its whole result (output, pool, worker, timings).
   * @param {string} kind @param {Payload} [payload] @param {Params} [params] @param {TaskOptions} [options]
   * @returns {Promise<TaskResult>}
   */
  async runResult(kind, payload, params, options = {}) {
    const request = toRequest(kind, payload, params, options, 0);
    return toResult(await this.#unary(this.#pick(), 'Run', request, options));
  }

  /**
   * Queues one task; returns its id at once: the daemon's task id as a decimal string
   * ("42"), or with an address list "42@unix:/b.sock", naming the daemon that has it
   * (task ids are per daemon), which wait() and cancel() take back.
   * @param {string} kind @param {Payload} [payload] @param {Params} [params] @param {TaskOptions} [options]
   * @returns {Promise<string>}
   */
  async submit(kind, payload, params, options = {}) {
    const request = toRequest(kind, payload, params, options, 0);
    const daemon = this.#pick();
    const ref = await this.#unary(daemon, 'Submit', request, options);
    return this.#daemons.length > 1 ? `${ref.taskId}@${daemon.target}` : ref.taskId;
  }

  /**
   * Waits for a submitted task and returns its output. With `timeoutMs`, gives up after that
   * long with DeadlineExceededError (the task keeps running).
   * @param {string | number | bigint} id @param {{timeoutMs?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<Buffer>}
   */
  async wait(id, options) {
    return (await this.waitResult(id, options)).output;
  }

  /**
   * wait(), returning the whole result.
   * @param {string | number | bigint} id @param {{timeoutMs?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<TaskResult>}
   */
  async waitResult(id, { timeoutMs, signal } = {}) {
    const { taskId, target } = parseTaskId(id);
    const deadline = timeoutMs ? Date.now() + timeoutMs : undefined;
    return toResult(await this.#unary(this.#daemonOfTask(taskId, target), 'Wait', { taskId },
                                      { deadline, signal, taskId }));
  }

  /**
   * Cancels a queued or running task; returns the state it was in when the cancel arrived:
   * "queued" or "running" (now cancelled), or "done" (it had already ended; its result stands).
   * @param {string | number | bigint} id
   * @returns {Promise<string>}
   */
  async cancel(id) {
    const { taskId, target } = parseTaskId(id);
    const reply = await this.#unary(this.#daemonOfTask(taskId, target), 'Cancel', { taskId }, { taskId });
    return reply.state;
  }

  /**
   * The daemon's status: workers, pools, counters. With an address list, the first
   * daemon's unless `address` names another of the list.
   * @param {{address?: string}} [options]
   * @returns {Promise<DaemonStatus>}
   */
  async status({ address } = {}) {
    return toStatus(await this.#unary(this.#daemonAt(address), 'Status', {}, {}));
  }

  /**
   * The kinds the daemon runs, with their parameters.
   * @param {{address?: string}} [options]
   * @returns {Promise<KindInfo[]>}
   */
  async kinds({ address } = {}) {
    return toKinds(await this.#unary(this.#daemonAt(address), 'ListKinds', {}, {}));
  }

  /**
   * Runs many tasks over one RunStream and yields their results as they complete (not in
   * request order). Each request's tag is its index in `requests`. A failed task is a
   * result with a non-zero `code` (see errorForResult()), never an exception; the
   * iterator throws only when the stream itself fails (a ConnectionError, say).
   * Leaving the loop early cancels the stream. `options` apply to requests that do not set their own.
   *
   * @param {Iterable<StreamRequest> | AsyncIterable<StreamRequest>} requests
   * @param {{timeoutMs?: number, priority?: number, signal?: AbortSignal}} [options]
   * @returns {AsyncGenerator<TaskResult, void, undefined>}
   */
  stream(requests, options = {}) {
    this.#checkOpen();
    const daemon = this.#pick();
    const call = daemon.stub.RunStream(this.#metadata(), {});
    const queue = [];
    let head = 0;
    let finished = false; // the call has ended, either way
    /** @type {Error | null} */
    let failure = null;
    let paused = false;
    /** @type {(() => void) | null} */
    let wake = null;
    const notify = () => {
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    };
    const fail = (err) => {
      if (!failure) failure = err;
      notify();
    };

    call.on('data', (r) => {
      queue.push(toResult(r));
      if (!paused && queue.length - head >= STREAM_HIGH_WATER) {
        paused = true;
        call.pause();
      }
      notify();
    });
    call.on('error', (err) => {
      finished = true;
      fail(this.#toError(err, daemon, {}));
    });
    call.on('end', () => {
      finished = true;
      notify();
    });
    const onAbort = () => call.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) call.cancel();

    // The writer: sends requests as the call accepts them, then half-closes.
    const drained = () => new Promise((resolve) => {
      const done = () => {
        call.off('drain', done);
        call.off('close', done);
        call.off('error', done);
        resolve(undefined);
      };
      call.on('drain', done);
      call.on('close', done);
      call.on('error', done);
    });
    (async () => {
      let tag = 0;
      for await (const req of requests) {
        if (finished) return;
        if (req === null || typeof req !== 'object') {
          throw new TypeError(`crunch-client: stream request ${tag} must be an object {kind, payload, params}`);
        }
        const request = toRequest(req.kind, req.payload, req.params,
                                  { timeoutMs: req.timeoutMs ?? options.timeoutMs,
                                    priority: req.priority ?? options.priority }, tag);
        tag++;
        if (!call.write(request)) await drained();
      }
      if (!finished) call.end();
    })().catch((err) => {
      fail(err);
      call.cancel();
    });

    return (async function* results() {
      try {
        while (true) {
          if (head < queue.length) {
            const r = queue[head];
            queue[head++] = undefined;
            if (head > 1024 && head * 2 > queue.length) {
              queue.splice(0, head);
              head = 0;
            }
            if (paused && queue.length - head < STREAM_HIGH_WATER / 2) {
              paused = false;
              call.resume();
            }
            yield r;
            continue;
          }
          if (failure) throw failure;
          if (finished) return;
          await new Promise((resolve) => { wake = resolve; });
        }
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
        if (!finished) call.cancel();
      }
    })();
  }

  /** Closes every channel; calls in progress fail. */
  close() {
    this.#closed = true;
    for (const d of this.#daemons) d.stub.close();
  }

  #checkOpen() {
    if (this.#closed) throw new Error('crunch-client: the client is closed');
  }

  /** The next daemon in turn, skipping ones that failed to connect while another has not. */
  #pick() {
    this.#checkOpen();
    const n = this.#daemons.length;
    for (let i = 0; i < n; i++) {
      const d = this.#daemons[(this.#next + i) % n];
      if (n === 1 || d.stub.getChannel().getConnectivityState(false) !== grpc.connectivityState.TRANSIENT_FAILURE) {
        this.#next = (this.#next + i + 1) % n;
        return d;
      }
    }
    const d = this.#daemons[this.#next];
    this.#next = (this.#next + 1) % n;
    return d;
  }

  /** @param {string | undefined} address */
  /** The daemon a task id belongs to: with several, the id must say which (ids are per daemon). */
  #daemonOfTask(taskId, target) {
    this.#checkOpen();
    if (target === undefined && this.#daemons.length > 1) {
      throw new TypeError(`crunch-client: task id ${taskId} does not say which daemon holds it, and this ` +
                          `client has several (${this.addresses.join(', ')}); pass the id submit() ` +
                          `returned, "${taskId}@ADDRESS"`);
    }
    return this.#daemonAt(target);
  }

  #daemonAt(address) {
    this.#checkOpen();
    if (address === undefined) return this.#daemons[0];
    const [target] = parseAddressList(address);
    const d = this.#daemons.find((x) => x.target === target);
    if (!d) {
      throw new TypeError(`crunch-client: ${address} is not one of this client's addresses (${this.addresses.join(', ')})`);
    }
    return d;
  }

  /** A call's metadata: the bearer token, if any. */
  #metadata() {
    const metadata = new grpc.Metadata();
    if (this.#authorization) metadata.set('authorization', this.#authorization);
    return metadata;
  }

  /**
   * @param {{target: string, stub: any}} daemon @param {string} method @param {object} request
   * @param {{deadline?: number, signal?: AbortSignal, taskId?: string}} options
   */
  #unary(daemon, method, request, { deadline, signal, taskId }) {
    return new Promise((resolve, reject) => {
      const callOptions = deadline ? { deadline } : {};
      let onAbort;
      const call = daemon.stub[method](request, this.#metadata(), callOptions, (err, reply) => {
        if (onAbort) signal.removeEventListener('abort', onAbort);
        if (err) reject(this.#toError(err, daemon, { taskId }));
        else resolve(reply);
      });
      if (signal) {
        onAbort = () => call.cancel();
        if (signal.aborted) call.cancel();
        else signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  /** A grpc-js error as a TaskError subclass; UNAVAILABLE without a live connection is a ConnectionError. */
  #toError(err, daemon, { taskId }) {
    if (typeof err?.code !== 'number') return err;
    const details = err.details || err.message;
    if (err.code === grpc.status.UNAVAILABLE &&
        daemon.stub.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY) {
      return new ConnectionError(daemon.target, details, err);
    }
    return errorForCode(err.code, details, { taskId, address: daemon.target, cause: err });
  }
}

module.exports = { Client, errorForResult };
