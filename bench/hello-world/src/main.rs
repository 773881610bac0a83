//! Hello world, the way the aws-lambda-rust-runtime examples write it: the
//! baseline our functions' cold starts are compared with.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|_: LambdaEvent<Value>| async { Ok::<_, Error>(json!({"statusCode": 200, "body": "hello"})) })).await
}
