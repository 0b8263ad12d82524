# Compute: one Lambda function per entry point, all from the one container image, each with a
# role of its own (iam.tf).

locals {
  function_commands = {
    ingest      = "glucosestream.aws.handlers.ingest"
    authorizer  = "glucosestream.aws.handlers.authorize"
    plan        = "glucosestream.aws.handlers.plan"
    bucket_task = "glucosestream.aws.handlers.bucket_task"
    publish     = "glucosestream.aws.handlers.publish"
    fail        = "glucosestream.aws.handlers.fail"
    maintain    = "glucosestream.aws.handlers.maintain"
  }
  function_names = { for key in keys(local.function_commands) : key => "${var.name_prefix}-${replace(key, "_", "-")}" }

  memory_mb = merge({
    ingest      = 1024
    authorizer  = 512
    plan        = 2048
    bucket_task = 6144
    publish     = 3008
    fail        = 1024
    # Compaction rewrites a partition's files as one, in memory, like a bucket task's merge.
    maintain = lookup(var.lambda_memory_mb, "bucket_task", 6144)
  }, var.lambda_memory_mb)
  timeout_s = merge({
    ingest      = 29
    authorizer  = 10
    plan        = 900
    bucket_task = 900
    publish     = 900
    fail        = 300
    maintain    = 900
  }, var.lambda_timeout_s)
  reserved_concurrency = merge({
    ingest      = 20
    authorizer  = 20
    plan        = 1
    bucket_task = var.map_max_concurrency
    publish     = 1
    fail        = 1
    maintain    = 1
  }, var.lambda_reserved_concurrency)

  # The environment every function reads (docs/configuration.md); secrets stay in the secret.
  function_environment = merge(var.extra_environment, {
    GLUCOSESTREAM_LAKE__ROOT             = "s3://${aws_s3_bucket.lake.id}/lake"
    GLUCOSESTREAM_LAKE__CATALOG_URL      = "glue://${local.region}"
    GLUCOSESTREAM_LAKE__NAMESPACE_PREFIX = var.namespace_prefix
    GLUCOSESTREAM_LAKE__S3_REGION        = local.region
    GLUCOSESTREAM_LAKE__LOCK_URL         = "dynamodb://${aws_dynamodb_table.lock.name}"
    GLUCOSESTREAM_SECRETS_ARN            = aws_secretsmanager_secret.runtime.arn
    # A run's plan sizes its bucket tasks for the bucket task function's memory.
    GLUCOSESTREAM_PIPELINE__TASK_MEMORY_MB = tostring(local.memory_mb["bucket_task"])
  })
  in_vpc = length(var.vpc_subnet_ids) > 0
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_272:Lambda code signing applies to .zip packages only, not to container images; the image is pinned by its ECR digest (image_uri).
  for_each      = local.function_commands
  function_name = local.function_names[each.key]
  description   = "GlucoseStream ${each.key} (${each.value})"
  role          = aws_iam_role.function[each.key].arn
  package_type  = "Image"
  image_uri     = var.image_uri
  architectures = [var.lambda_architecture]
  memory_size   = local.memory_mb[each.key]
  timeout       = local.timeout_s[each.key]
  kms_key_arn   = aws_kms_key.lake.arn
  tags          = var.tags

  reserved_concurrent_executions = local.reserved_concurrency[each.key]

  image_config {
    command = [each.value]
  }

  ephemeral_storage {
    size = each.key == "bucket_task" ? var.bucket_task_ephemeral_storage_mb : 512
  }

  environment {
    variables = local.function_environment
  }

  tracing_config {
    mode = "Active"
  }

  # Where an asynchronous invocation lands after Lambda's retries (Step Functions and API Gateway
  # invoke synchronously; an operator's or a future event source's async call does not).
  dead_letter_config {
    target_arn = aws_sqs_queue.lambda_dlq.arn
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  # The log group (with its retention) and the role's permissions exist before the first call.
  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]
}

# The functions' secret: JSON with GLUCOSESTREAM_LAKE__METADATA_URL (the operator's PostgreSQL) and
# GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET. Terraform creates it empty (no value in the state);
# the operator puts the value (README: aws secretsmanager put-secret-value).
resource "aws_secretsmanager_secret" "runtime" {
  #checkov:skip=CKV2_AWS_57:No automatic rotation: the pseudonym secret must never change by itself (every patient key is derived from it) and the metadata store URL's credentials rotate with the operator's database; no rotation Lambda fits both.
  name                    = "${var.name_prefix}/runtime"
  description             = "GlucoseStream runtime settings: the metadata store URL and the pseudonym secret (JSON)"
  kms_key_id              = aws_kms_key.lake.arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}
