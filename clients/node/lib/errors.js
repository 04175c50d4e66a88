'use strict';
// Errors: one class per gRPC status code that crunch.v1 documents (crunch.proto).

const CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION',
  'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** @param {number} code @returns {string} the gRPC name of a status code */
function codeName(code) {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

/**
 * A task or call that crunchd (or gRPC) failed. `code` is the gRPC status
 * code number, `codeName` its name ("NOT_FOUND"), `details` the daemon's
 * message. Codes without a subclass below are plain TaskErrors.
 */
class TaskError extends Error {
  /**
   * @param {number} code
   * @param {string} details
   * @param {{taskId?: string, tag?: number, address?: string, cause?: unknown}} [extra]
   */
  constructor(code, details, extra = {}) {
    super(`${codeName(code)}: ${details}`, extra.cause ? { cause: extra.cause } : undefined);
    this.name = new.target.name;
    /** @type {number} */
    this.code = code;
    /** @type {string} */
    this.codeName = codeName(code);
    /** @type {string} */
    this.details = details;
    /** @type {string | undefined} the task's id, when the error came with one */
    this.taskId = extra.taskId;
    /** @type {number | undefined} the request's tag (stream index), when known */
    this.tag = extra.tag;
    /** @type {string | undefined} the gRPC target the call went to */
    this.address = extra.address;
  }
}

/** Unknown kind or task id. */
class NotFoundError extends TaskError {}
/** A bad parameter; the message names it and its allowed range. */
class InvalidArgumentError extends TaskError {}
/** Payload or output too large, or the queue is full. */
class ResourceExhaustedError extends TaskError {}
/** The task ran past its timeout (or a Wait's own deadline passed). */
class DeadlineExceededError extends TaskError {}
/** The worker process died while running the task. */
class AbortedError extends TaskError {}
/** Cancelled by cancel(), or the call was cancelled on this side. */
class CancelledError extends TaskError {}
/** A path or URL the daemon's configuration does not allow. */
class PermissionDeniedError extends TaskError {}
/** The daemon is draining for shutdown, or cannot be reached (see ConnectionError). */
class UnavailableError extends TaskError {}

/**
 * crunchd could not be reached at all (no socket, refused, connection lost).
 * The message names the address that was tried.
 */
class ConnectionError extends UnavailableError {
  /** @param {string} address @param {string} details @param {unknown} [cause] */
  constructor(address, details, cause) {
    super(14, `cannot reach crunchd at ${address}: ${details.replace(/[\s.]*Resolution note:\s*$/, '')} ` +
              '(is it running? try `systemctl status crunchd`, or pass the right address)',
          { address, cause });
  }
}

const CLASS_BY_CODE = {
  1: CancelledError,
  3: InvalidArgumentError,
  4: DeadlineExceededError,
  5: NotFoundError,
  7: PermissionDeniedError,
  8: ResourceExhaustedError,
  10: AbortedError,
  14: UnavailableError,
};

/**
 * The error for a failed code, as the matching subclass of TaskError.
 * @param {number} code
 * @param {string} details
 * @param {{taskId?: string, tag?: number, address?: string, cause?: unknown}} [extra]
 * @returns {TaskError}
 */
function errorForCode(code, details, extra) {
  const Cls = CLASS_BY_CODE[code] ?? TaskError;
  return new Cls(code, details, extra);
}

module.exports = {
  codeName,
  errorForCode,
  TaskError,
  NotFoundError,
  InvalidArgumentError,
  ResourceExhaustedError,
  DeadlineExceededError,
  AbortedError,
  CancelledError,
  PermissionDeniedError,
  UnavailableError,
  ConnectionError,
};
