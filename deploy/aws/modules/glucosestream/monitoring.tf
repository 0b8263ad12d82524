# Operations: log groups (retention, the lake key), dead-letter queues, the alarm topic and alarms.

resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.function_commands
  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "states" {
  name              = "/aws/vendedlogs/states/${var.name_prefix}-pipeline"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "api" {
  name              = "/aws/apigateway/${var.name_prefix}-ingest"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.lake.arn
  tags              = var.tags
}

resource "aws_sqs_queue" "lambda_dlq" {
  name                              = "${var.name_prefix}-lambda-dlq"
  message_retention_seconds         = 1209600 # 14 days, SQS's longest
  kms_master_key_id                 = aws_kms_key.lake.arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

resource "aws_sqs_queue" "schedule_dlq" {
  name                              = "${var.name_prefix}-schedule-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.lake.arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.lake.arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "CloudWatchAlarmsOfThisAccount"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.${local.dns_suffix}" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  # Every alarm fires on one bad datapoint in five minutes: each is a failure someone must see.
  alarms = merge(
    {
      pipeline-failed = {
        description = "A pipeline run failed (its batches are rejected; nothing partial was published)"
        namespace   = "AWS/States", metric = "ExecutionsFailed", statistic = "Sum"
        dimensions  = { StateMachineArn = aws_sfn_state_machine.pipeline.arn }
      }
      pipeline-timed-out = {
        description = "A pipeline run timed out"
        namespace   = "AWS/States", metric = "ExecutionsTimedOut", statistic = "Sum"
        dimensions  = { StateMachineArn = aws_sfn_state_machine.pipeline.arn }
      }
      ingest-5xx = {
        description = "HTTP ingest answered 5xx"
        namespace   = "AWS/ApiGateway", metric = "5xx", statistic = "Sum"
        dimensions  = { ApiId = aws_apigatewayv2_api.ingest.id, Stage = "$default" }
      }
      lambda-dlq-depth = {
        description = "Failed asynchronous Lambda invocations are waiting in the dead-letter queue"
        namespace   = "AWS/SQS", metric = "ApproximateNumberOfMessagesVisible", statistic = "Maximum"
        dimensions  = { QueueName = aws_sqs_queue.lambda_dlq.name }
      }
      schedule-dlq-depth = {
        description = "Scheduled pipeline starts or maintenance calls failed and are waiting in the dead-letter queue"
        namespace   = "AWS/SQS", metric = "ApproximateNumberOfMessagesVisible", statistic = "Maximum"
        dimensions  = { QueueName = aws_sqs_queue.schedule_dlq.name }
      }
    },
    {
      for key in keys(local.function_commands) : "${replace(key, "_", "-")}-errors" => {
        description = "The ${key} function raised errors"
        namespace   = "AWS/Lambda", metric = "Errors", statistic = "Sum"
        dimensions  = { FunctionName = aws_lambda_function.this[key].function_name }
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each            = local.alarms
  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  dimensions          = each.value.dimensions
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = var.tags
}
