// Minimal AWS Lambda Runtime API client, driving a handler the way Lambda's Node runtime does.
// Usage: node runtime.mjs <webhook|checkout|hello>
// node:http with a keep-alive Agent rather than global fetch: fetch would load undici on first
// use and charge its load time to Node's cold start, which the real runtime does not pay.
import http from 'node:http';

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [host, port] = api.split(':');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const base = '/2018-06-01/runtime';

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = data ? { 'content-type': 'application/json', 'content-length': data.length } : {};
    const req = http.request({ host, port, path: base + path, method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

// Some SDK errors (stripe-node's) keep the generic name 'Error': their class says more.
const errorType = (e) => (e?.name && e.name !== 'Error' ? e.name : e?.constructor?.name ?? 'Error');
const errorBody = (e) => ({ errorMessage: String(e?.message ?? e), errorType: errorType(e) });

const name = process.argv[2];
let handler;
try {
  // The module's top level is the function's init phase (SDK clients are built there).
  ({ handler } = await import(`./${name}.mjs`));
  if (typeof handler !== 'function') throw new TypeError(`${name}.mjs exports no handler`);
} catch (e) {
  await request('POST', '/init/error', errorBody(e)).catch(() => {});
  console.error(e);
  process.exit(1);
}

const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME ?? name;
for (;;) {
  const next = await request('GET', '/invocation/next');
  const id = next.headers['lambda-runtime-aws-request-id'];
  const deadline = Number(next.headers['lambda-runtime-deadline-ms'] ?? Date.now() + 30_000);
  const context = { awsRequestId: id, functionName, getRemainingTimeInMillis: () => deadline - Date.now() };
  try {
    const result = await handler(JSON.parse(next.body), context);
    await request('POST', `/invocation/${id}/response`, result);
  } catch (e) {
    console.error(e);
    await request('POST', `/invocation/${id}/error`, errorBody(e));
  }
}
