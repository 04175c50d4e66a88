'use strict';
// Where crunchd listens by default, and how an address string becomes gRPC targets.

/**
 * The address crunchd listens on when nothing is configured. Mirrors
 * DefaultAddressFor() in rpc/default_address.cc; keep the two in step.
 *
 * @param {number} [euid] effective uid (default: this process's)
 * @param {string | undefined} [xdgRuntimeDir] (default: $XDG_RUNTIME_DIR)
 * @returns {string}
 */
function defaultAddress(euid = process.geteuid(), xdgRuntimeDir = process.env.XDG_RUNTIME_DIR) {
  if (euid === 0) return 'unix:/run/crunchd/crunchd.sock';
  if (xdgRuntimeDir && xdgRuntimeDir.startsWith('/')) return `unix:${xdgRuntimeDir}/crunchd.sock`;
  return `unix:/tmp/crunchd-${euid}/crunchd.sock`;
}

const SOCKADDR_SCHEMES = ['unix-abstract', 'unix', 'ipv4', 'ipv6'];

/** @param {string} item @returns {{scheme: string, rest: string}} */
function classify(item) {
  for (const scheme of SOCKADDR_SCHEMES) {
    if (item.startsWith(scheme + ':') && item.length > scheme.length + 1) {
      let rest = item.slice(scheme.length + 1);
      // "unix:///a.sock" is the URI spelling of "unix:/a.sock".
      if (scheme === 'unix' && rest.startsWith('///')) rest = rest.slice(2);
      return { scheme, rest };
    }
  }
  if (item.startsWith('/')) return { scheme: 'unix', rest: item };
  return { scheme: '', rest: item };
}

/**
 * Splits an address into one gRPC target per daemon, the way crunchctl does
 * (clients/cli/target_list.cc): a bare path means a unix socket, and a
 * comma-separated list names several daemons ("unix:/a.sock,unix:/b.sock",
 * gRPC's own "unix:/a.sock,b.sock" and "ipv4:10.0.0.1:1,10.0.0.2:1" too).
 *
 * @param {string} address
 * @returns {string[]}
 */
function parseAddressList(address) {
  const whole = String(address).trim();
  if (!whole) {
    throw new TypeError('crunch-client: the address is empty; give a gRPC target such as ' +
                        'unix:/path/to/crunchd.sock or host:port');
  }
  const targets = [];
  let previousScheme = '';
  for (const raw of whole.split(',')) {
    const item = raw.trim();
    if (!item) {
      throw new TypeError(`crunch-client: empty entry in the address list '${whole}'; ` +
                          'separate addresses with single commas');
    }
    const e = classify(item);
    // gRPC's list form "unix:/a.sock,b.sock": a relative path after a unix entry.
    if (previousScheme.startsWith('unix') && !e.scheme && !item.includes(':')) {
      e.scheme = previousScheme;
    }
    previousScheme = e.scheme;
    targets.push(e.scheme ? `${e.scheme}:${e.rest}` : e.rest);
  }
  return targets;
}

module.exports = { defaultAddress, parseAddressList };
