'use strict';
// Runs N copies of a task through the Node client (crunch-client) given an
// address list, C at a time, for scaling_test.py. Exits 1 if any task fails.
//
//   node node_run.js CLIENT_DIR ADDRESS KIND PARAMS_JSON N C

const [clientDir, address, kind, paramsJson, n, c] = process.argv.slice(2);
if (c === undefined) {
  console.error('usage: node node_run.js CLIENT_DIR ADDRESS KIND PARAMS_JSON N C');
  process.exit(2);
}
const { Client } = require(clientDir);

async function main() {
  const client = new Client({ address });
  const params = JSON.parse(paramsJson);
  let next = 0;
  const lane = async () => {
    while (next < Number(n)) {
      next++;
      await client.run(kind, '', params);
    }
  };
  try {
    await Promise.all(Array.from({ length: Number(c) }, lane));
    console.log(JSON.stringify({ addresses: client.addresses, tasks: Number(n) }));
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(`node_run.js: ${err.stack || err}`);
  process.exit(1);
});
