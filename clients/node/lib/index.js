'use strict';
// crunch-client: a Node.js client for crunchd's crunch.v1.Crunch gRPC API.
//
//   const { Client } = require('crunch-client');
//   const client = new Client();                      // crunchd's default address
//   (await client.run('fib', '', { n: 30 })).toString() // '832040'

const { Client, errorForResult } = require('./client');
const { defaultAddress, parseAddressList } = require('./address');
const {
  codeName, errorForCode, TaskError, NotFoundError, InvalidArgumentError, ResourceExhaustedError,
  DeadlineExceededError, AbortedError, CancelledError, PermissionDeniedError, UnavailableError,
  ConnectionError,
} = require('./errors');
const { DEFAULT_PROTO_PATH } = require('./proto');

// Every name spelled out, so `import { Client } from 'crunch-client'` finds them all from ESM too.
module.exports = {
  Client,
  errorForResult,
  defaultAddress,
  parseAddressList,
  DEFAULT_PROTO_PATH,
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
