// Node twin of the Rust stripe-webhook function: verify Stripe's signature, enqueue the event.
import Stripe from 'stripe';
import { SQSClient, SendMessageCommand } from '@aws-sdk/client-sqs';

// Init phase: clients are built once per cold start, as in the Rust function.
// Region and credentials come from AWS_REGION / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
const stripe = new Stripe(process.env.STRIPE_SECRET_KEY);
const sqs = new SQSClient({ endpoint: process.env.AWS_ENDPOINT_URL });
// A comma-separated list lets a secret be rotated: the old and new ones are both accepted.
const secrets = (process.env.STRIPE_WEBHOOK_SECRET ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const json = (statusCode, body) => ({ statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

function verify(raw, sig) {
  if (!sig) return null;
  for (const secret of secrets) {
    try {
      return stripe.webhooks.constructEvent(raw, sig, secret);
    } catch {
      // Wrong secret (or bad header): try the next one.
    }
  }
  return null;
}

export const handler = async (event) => {
  // Verify over the exact bytes Stripe signed, so never re-serialize the body.
  const raw = event.isBase64Encoded ? Buffer.from(event.body ?? '', 'base64') : Buffer.from(event.body ?? '');
  const ev = verify(raw, event.headers?.['stripe-signature']);
  if (!ev) return json(400, { error: { code: 'invalid_signature' } });
  await sqs.send(new SendMessageCommand({
    QueueUrl: process.env.VISITPAY_QUEUE_URL,
    MessageBody: JSON.stringify({ event_id: ev.id, type: ev.type, account: ev.account ?? null, payload: raw.toString('utf8') }),
  }));
  return json(200, { received: true });
};
