// The Node.js peer of our DynamoDB-only functions (action-status, clinic-settings,
// select-invoices, the consumer's reads): one consistent GetItem, answered as JSON.
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';

const dynamodb = new DynamoDBClient({ endpoint: process.env.AWS_ENDPOINT_URL });

export const handler = async (event) => {
  const token = event.pathParameters?.token;
  const { Item } = await dynamodb.send(
    new GetItemCommand({
      TableName: process.env.VISITPAY_TABLE,
      Key: { pk: { S: `bench#${token}` }, sk: { S: 'link' } },
      ConsistentRead: true,
    }),
  );
  if (!Item) return { statusCode: 404, body: JSON.stringify({ error: { code: 'not_found' } }) };
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ action_id: Item.action_id.S, amount: Number(Item.amount.N), currency: Item.currency.S }),
  };
};
