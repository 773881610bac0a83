// Node twin of the Rust create-checkout function: look up the payment link, create a
// Checkout Session on the clinic's connected account, remember the session.
import Stripe from 'stripe';
import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';

// STRIPE_API_BASE points stripe-node at an emulator (e.g. http://127.0.0.1:12111);
// stripe-node takes host/port/protocol separately and always adds the /v1 paths itself.
function stripeConfig(base) {
  if (!base) return {};
  const u = new URL(base);
  const protocol = u.protocol.replace(':', '');
  return { host: u.hostname, port: Number(u.port || (protocol === 'http' ? 80 : 443)), protocol };
}

// Init phase: clients are built once per cold start, as in the Rust function.
const stripe = new Stripe(process.env.STRIPE_SECRET_KEY, stripeConfig(process.env.STRIPE_API_BASE));
const ddb = new DynamoDBClient({ endpoint: process.env.AWS_ENDPOINT_URL });
const table = process.env.VISITPAY_TABLE;

const json = (statusCode, body) => ({ statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

export const handler = async (event) => {
  const token = event.pathParameters?.token ?? event.rawPath?.match(/^\/patient\/actions\/([^/]+)\/checkout$/)?.[1];
  if (!token) return json(404, { error: { code: 'not_found' } });
  const pk = 'bench#' + token;
  const { Item: item } = await ddb.send(new GetItemCommand({
    TableName: table, Key: { pk: { S: pk }, sk: { S: 'link' } }, ConsistentRead: true,
  }));
  if (!item) return json(404, { error: { code: 'not_found' } });
  const actionId = item.action_id.S;
  // The idempotency key only replays if the body is identical, so a replay in a later second
  // must send the same expires_at: use the link's own (as the Rust function stores it on the
  // attempt) when the item has one, else now + 1 h.
  const expiresAt = item.expires_at ? Number(item.expires_at.N) : Math.floor(Date.now() / 1000) + 3600;
  const session = await stripe.checkout.sessions.create({
    mode: 'payment',
    client_reference_id: actionId,
    line_items: [{ quantity: 1, price_data: { currency: item.currency.S, unit_amount: Number(item.amount.N), product_data: { name: 'Clinic services' } } }],
    success_url: `https://pay.example.test/patient/actions/${token}?paid=1`,
    cancel_url: `https://pay.example.test/patient/actions/${token}`,
    metadata: { visitpay_action_id: actionId, visitpay_clinic_id: item.clinic_id.S },
    locale: 'fr-CA',
    expires_at: expiresAt,
  }, { stripeAccount: item.account.S, idempotencyKey: `checkout-${actionId}-1` });
  try {
    await ddb.send(new PutItemCommand({
      TableName: table,
      Item: { pk: { S: pk }, sk: { S: 'session' }, session_id: { S: session.id }, url: { S: session.url } },
      ConditionExpression: 'attribute_not_exists(pk)',
    }));
  } catch (e) {
    // A replay finds the session already recorded; the idempotency key returned the same one.
    if (e.name !== 'ConditionalCheckFailedException') throw e;
  }
  return json(200, { url: session.url });
};
