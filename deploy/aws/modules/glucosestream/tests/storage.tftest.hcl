# Storage: encryption with the lake key, TLS only, no public access, versions, lifecycle, logs.
mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
      arn        = "arn:aws:iam::123456789012:user/terraform"
      user_id    = "AIDATESTTESTTESTTEST"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "eu-central-1"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition  = "aws"
      dns_suffix = "amazonaws.com"
    }
  }
  # The provider checks that these are ARNs even under the mock (Lambda ARNs stay random, so
  # each function's differs).
  mock_resource "aws_kms_key" {
    defaults = {
      arn    = "arn:aws:kms:eu-central-1:123456789012:key/11111111-2222-3333-4444-555555555555"
      key_id = "11111111-2222-3333-4444-555555555555"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-central-1:123456789012:mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-central-1:123456789012:mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-central-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_sfn_state_machine" {
    defaults = { arn = "arn:aws:states:eu-central-1:123456789012:stateMachine:mock" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-central-1:123456789012:table/mock" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:mock" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = { invoke_arn = "arn:aws:apigateway:eu-central-1:lambda:path/2015-03-31/functions/mock/invocations" }
  }
  mock_resource "aws_apigatewayv2_api" {
    defaults = { execution_arn = "arn:aws:execute-api:eu-central-1:123456789012:mockapi" }
  }
}

# Distinct log group ARNs where a test tells them apart.
override_resource {
  target = aws_cloudwatch_log_group.api
  values = { arn = "arn:aws:logs:eu-central-1:123456789012:log-group:/aws/apigateway/glucosestream-ingest" }
}
override_resource {
  target = aws_cloudwatch_log_group.states
  values = { arn = "arn:aws:logs:eu-central-1:123456789012:log-group:/aws/vendedlogs/states/glucosestream-pipeline" }
}

variables {
  image_uri = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/glucosestream@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

run "the_lake_is_encrypted_with_the_customer_managed_key" {
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.lake.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms"
    error_message = "The lake bucket's default encryption is not SSE-KMS."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.lake.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == aws_kms_key.lake.arn
    error_message = "The lake bucket is not encrypted with the module's key."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.lake.rule).bucket_key_enabled
    error_message = "S3 bucket keys are off."
  }
  assert {
    condition     = aws_kms_key.lake.enable_key_rotation
    error_message = "The lake key does not rotate."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.logs.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "AES256"
    error_message = "The log bucket is not encrypted (SSE-S3: server access logging cannot write to SSE-KMS)."
  }
  assert {
    condition = alltrue([
      for kind in ["secret", "lock", "sns", "lambda_dlq", "schedule_dlq"] : {
        secret       = aws_secretsmanager_secret.runtime.kms_key_id
        lock         = one(aws_dynamodb_table.lock.server_side_encryption).kms_key_arn
        sns          = aws_sns_topic.alarms.kms_master_key_id
        lambda_dlq   = aws_sqs_queue.lambda_dlq.kms_master_key_id
        schedule_dlq = aws_sqs_queue.schedule_dlq.kms_master_key_id
      }[kind] == aws_kms_key.lake.arn
    ])
    error_message = "The secret, lock table, alarm topic or a dead-letter queue is not encrypted with the lake key."
  }
  assert {
    condition     = alltrue([for fn in aws_lambda_function.this : fn.kms_key_arn == aws_kms_key.lake.arn])
    error_message = "A function's environment is not encrypted with the lake key."
  }
}

run "both_buckets_deny_plain_http_and_block_public_access" {
  assert {
    condition = alltrue([
      for policy in [aws_s3_bucket_policy.lake.policy, aws_s3_bucket_policy.logs.policy] : anytrue([
        for s in jsondecode(policy).Statement : (
          s.Effect == "Deny" && s.Principal == "*" && contains(flatten([s.Action]), "s3:*")
          && try(s.Condition.Bool["aws:SecureTransport"], "") == "false"
          && length(flatten([s.Resource])) == 2
        )
      ])
    ])
    error_message = "A bucket policy lacks a Deny of every action over plain HTTP (aws:SecureTransport false)."
  }
  assert {
    condition = alltrue([
      for block in [aws_s3_bucket_public_access_block.lake, aws_s3_bucket_public_access_block.logs] :
      block.block_public_acls && block.block_public_policy && block.ignore_public_acls && block.restrict_public_buckets
    ])
    error_message = "A bucket's public access block is not fully on."
  }
  assert {
    condition = alltrue([
      for v in [aws_s3_bucket_versioning.lake, aws_s3_bucket_versioning.logs] : v.versioning_configuration[0].status == "Enabled"
    ])
    error_message = "A bucket is not versioned."
  }
  assert {
    condition     = aws_s3_bucket_logging.lake.target_bucket == aws_s3_bucket.logs.id && aws_s3_bucket.logs.id != aws_s3_bucket.lake.id
    error_message = "The lake bucket's access logs do not go to the separate log bucket."
  }
}

run "raw_batches_move_to_cheaper_classes_and_never_expire" {
  assert {
    condition = [
      for rule in aws_s3_bucket_lifecycle_configuration.lake.rule : { for t in rule.transition : t.storage_class => t.days }
      if one(rule.filter).prefix == "lake/raw/batches/"
    ] == [{ STANDARD_IA = var.raw_infrequent_access_days, GLACIER_IR = var.raw_archive_days }]
    error_message = "Raw batches do not move to STANDARD_IA and then GLACIER_IR."
  }
  assert {
    condition = alltrue([
      for rule in aws_s3_bucket_lifecycle_configuration.lake.rule : length(rule.expiration) == 0
      if contains(["lake/raw/batches/", "lake/warehouse/", ""], one(rule.filter).prefix)
    ])
    error_message = "A lifecycle rule expires raw batches or Iceberg tables."
  }
  assert {
    condition = {
      for rule in aws_s3_bucket_lifecycle_configuration.lake.rule : one(rule.filter).prefix => one(rule.expiration).days
      if length(rule.expiration) > 0
      } == {
      "lake/staging/"   = 7
      "athena-results/" = 30
    }
    error_message = "Staging should expire after 7 days and Athena results after 30, and nothing else."
  }
  assert {
    condition = anytrue([
      for rule in aws_s3_bucket_lifecycle_configuration.lake.rule :
      length(rule.noncurrent_version_expiration) > 0 && one(rule.filter).prefix == "" && rule.status == "Enabled"
    ])
    error_message = "Noncurrent versions do not expire across the bucket."
  }
}
