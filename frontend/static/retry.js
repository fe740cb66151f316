// Writes that survive a server's death. Behind a load balancer, a server that dies mid-request
// leaves the browser with a network error (fetch rejects) or a 502/503/504 from the proxy, and
// no way to know whether the write committed. So a write carries an Idempotency-Key, and the
// *same* request with the *same* key is sent again after a short backoff: the server answers a
// repeat with the first answer and changes nothing, so a dispatch cut off after its commit is
// not mistaken for "unit not available" on the retry. Only for endpoints that take the header
// (README "Idempotency-Key"); others would do a retried write twice.
import { apiCall, newKey } from "/static/live.js";

// Waits before attempts 2..5: 0.5 + 1 + 2 + 4 s = 7.5 s, about 10 s with the requests themselves.
export const RETRY_DELAYS_MS = [500, 1000, 2000, 4000];
const RETRIABLE = new Set([0, 502, 503, 504]);  // 0: no answer at all (apiCall's network error)

// A request the console gave up on keeps its key: if the dispatcher sends the same request
// again by hand, it goes with that key, so a first attempt that did commit is answered, not
// repeated. Keyed by method, path and body; the newest few only.
const unsettled = new Map();
const UNSETTLED_MAX = 20;

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  if (signal && signal.aborted) { reject(signal.reason); return; }
  const timer = setTimeout(resolve, ms);
  if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
});

/** A write sent until it gets an answer: `{ok, status, body}` as apiCall gives, and the `key` sent.
 * `onRetry({attempt, status, delayMs})` is called before each retry (attempt 2, 3, ...), and
 * `onRetry(null)` once it is over, whatever the outcome, so the page can say it is retrying.
 * An aborted call (`signal`) throws, as apiCall does. */
export async function sendWrite(method, path, { token, body, signal, onRetry = () => {}, prefix = "console" } = {}) {
  const id = `${method} ${path} ${JSON.stringify(body === undefined ? null : body)}`;
  const key = unsettled.get(id) || newKey(prefix);
  // Kept until an answer settles it (also if the caller aborts meanwhile).
  unsettled.delete(id);
  unsettled.set(id, key);
  if (unsettled.size > UNSETTLED_MAX) unsettled.delete(unsettled.keys().next().value);
  let got;
  try {
    for (let attempt = 1; ; attempt += 1) {
      got = await apiCall(method, path, { token, body, signal, headers: { "Idempotency-Key": key } });
      if (!RETRIABLE.has(got.status) || attempt > RETRY_DELAYS_MS.length) break;
      // Jitter, so consoles cut off together do not all land on the surviving server at once.
      const delayMs = Math.round(RETRY_DELAYS_MS[attempt - 1] * (0.8 + Math.random() * 0.4));
      onRetry({ attempt: attempt + 1, status: got.status, delayMs });
      await sleep(delayMs, signal);
    }
  } finally {
    onRetry(null);
  }
  if (!RETRIABLE.has(got.status)) unsettled.delete(id);
  return { ...got, key };
}
