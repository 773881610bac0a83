// The Node.js peer of publish-action-events: a DynamoDB stream batch of
// action records, each one's visible fields as an event, one PutEvents call.
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';

const events = new EventBridgeClient({ endpoint: process.env.AWS_ENDPOINT_URL });

const detail = (image, old) => ({
  clinic_id: image.clinic_id.S,
  visit_id: image.visit_id.S,
  action_id: image.action_id.S,
  status: image.status.S,
  previous_status: old?.status?.S ?? null,
  amount: Number(image.amount.N),
  currency: image.currency.S,
  refunded_amount: Number(image.refunded_amount.N),
  disputed: image.disputed.BOOL,
  version: Number(image.version.N),
});

export const handler = async (event) => {
  const entries = event.Records.filter((r) => r.dynamodb?.NewImage).map((r) => ({
    EventBusName: process.env.VISITPAY_EVENT_BUS,
    Source: 'visitpay',
    DetailType: 'Payment action changed',
    Detail: JSON.stringify(detail(r.dynamodb.NewImage, r.dynamodb.OldImage)),
  }));
  const out = await events.send(new PutEventsCommand({ Entries: entries.slice(0, 10) }));
  const failed = (out.Entries ?? []).findIndex((e) => e.ErrorCode);
  const batchItemFailures =
    failed < 0 ? [] : [{ itemIdentifier: event.Records[failed].dynamodb.SequenceNumber }];
  return { batchItemFailures };
};
