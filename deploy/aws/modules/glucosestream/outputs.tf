output "api_url" {
  description = "Base URL of the HTTP ingest API (POST /v1/readings, /api/v1/entries[.json])."
  value       = aws_apigatewayv2_stage.default.invoke_url
}

output "bucket" {
  description = "The lake bucket; the lake is under s3://<bucket>/lake."
  value       = aws_s3_bucket.lake.id
}

output "lake_root" {
  description = "GLUCOSESTREAM_LAKE__ROOT for the local CLI on this lake."
  value       = "s3://${aws_s3_bucket.lake.id}/lake"
}

output "log_bucket" {
  description = "The bucket holding the lake bucket's access logs."
  value       = aws_s3_bucket.logs.id
}

output "kms_key_arn" {
  description = "The customer-managed key encrypting the lake, logs, queues, lock table and secret."
  value       = aws_kms_key.lake.arn
}

output "athena_workgroup" {
  description = "The Athena workgroup analysts and dashboards use."
  value       = aws_athena_workgroup.analysts.name
}

output "athena_named_queries" {
  description = "Named query id of each view (athena/<view>.sql)."
  value       = { for name, query in aws_athena_named_query.view : name => query.id }
}

output "state_machine_arn" {
  description = "The pipeline's state machine."
  value       = aws_sfn_state_machine.pipeline.arn
}

output "glue_databases" {
  description = "The Glue databases of the curated and results zones."
  value       = { curated = aws_glue_catalog_database.curated.name, results = aws_glue_catalog_database.results.name }
}

output "lock_table" {
  description = "The run lock's DynamoDB table (GLUCOSESTREAM_LAKE__LOCK_URL = dynamodb://<table>)."
  value       = aws_dynamodb_table.lock.name
}

output "secret_arn" {
  description = "The Secrets Manager secret the operator puts the runtime JSON in."
  value       = aws_secretsmanager_secret.runtime.arn
}

output "function_names" {
  description = "Lambda function name of each entry point (ingest, authorizer, plan, bucket_task, publish, fail, maintain)."
  value       = { for key, fn in aws_lambda_function.this : key => fn.function_name }
}

output "alarm_topic_arn" {
  description = "The SNS topic the alarms publish to."
  value       = aws_sns_topic.alarms.arn
}

output "dead_letter_queues" {
  description = "URLs of the dead-letter queues (Lambda async invocations, the schedules' calls)."
  value       = { lambda = aws_sqs_queue.lambda_dlq.url, schedule = aws_sqs_queue.schedule_dlq.url }
}

output "environment" {
  description = "The environment every function gets (no secrets): the same settings drive the local CLI on this lake."
  value       = local.function_environment
}
