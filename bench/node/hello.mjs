// The Node hello-world baseline: no SDK, no I/O.
export const handler = async () => ({ statusCode: 200, body: 'hello' });
