'use strict';
// Loads crunch.v1 from the repository's .proto at run time (no generated code).

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

/** rpc/crunch/v1/crunch.proto, found from this file: clients/node/lib/ -> repository root. */
const DEFAULT_PROTO_PATH = path.resolve(__dirname, '..', '..', '..', 'rpc', 'crunch', 'v1', 'crunch.proto');

// Field names become camelCase (task_id -> taskId); 64-bit integers arrive as
// decimal strings (the client turns all but task ids into Numbers); bytes are
// Buffers; unset fields get their defaults.
const LOADER_OPTIONS = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

const cache = new Map();

/**
 * The Crunch service constructor (a grpc-js client class).
 * @param {string} [protoPath] default: $CRUNCH_PROTO, else the repository's rpc/crunch/v1/crunch.proto
 * @returns {grpc.ServiceClientConstructor}
 */
function loadCrunchService(protoPath = process.env.CRUNCH_PROTO || DEFAULT_PROTO_PATH) {
  let service = cache.get(protoPath);
  if (!service) {
    let definition;
    try {
      definition = protoLoader.loadSync(protoPath, LOADER_OPTIONS);
    } catch (err) {
      throw new Error(`crunch-client: cannot load the crunch.v1 API from ${protoPath}: ${err.message} ` +
                      '(pass {protoPath} or set CRUNCH_PROTO to rpc/crunch/v1/crunch.proto)', { cause: err });
    }
    const pkg = /** @type {any} */ (grpc.loadPackageDefinition(definition));
    service = pkg.crunch.v1.Crunch;
    cache.set(protoPath, service);
  }
  return service;
}

module.exports = { loadCrunchService, DEFAULT_PROTO_PATH };
