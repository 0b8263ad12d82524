# Orchestration: the pipeline's state machine (generated from its step list: plan -> Map over
# buckets -> publish, a failed run closed by fail), the schedule that starts it, the schedule
# that calls maintenance, and the run lock.

locals {
  pipeline_functions = ["plan", "bucket_task", "publish", "fail"]
  state_machine_definition = templatefile("${path.module}/state_machine.asl.json", {
    plan_arn        = aws_lambda_function.this["plan"].arn
    bucket_task_arn = aws_lambda_function.this["bucket_task"].arn
    publish_arn     = aws_lambda_function.this["publish"].arn
    fail_arn        = aws_lambda_function.this["fail"].arn
    max_concurrency = var.map_max_concurrency
  })
}

resource "aws_iam_role" "states" {
  name        = "${var.name_prefix}-pipeline-states"
  description = "GlucoseStream pipeline state machine"
  tags        = var.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "StepFunctionsAssumesTheRole"
      Effect    = "Allow"
      Principal = { Service = "states.${local.dns_suffix}" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
        ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${var.name_prefix}-pipeline" }
      }
    }]
  })
}

resource "aws_iam_role_policy" "states" {
  name = "least-privilege"
  role = aws_iam_role.states.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "InvokePipelineFunctions"
        Effect = "Allow"
        Action = ["lambda:InvokeFunction"]
        Resource = flatten([
          for key in local.pipeline_functions : [aws_lambda_function.this[key].arn, "${aws_lambda_function.this[key].arn}:*"]
        ])
      },
      {
        # CloudWatch Logs' log-delivery API has no resource-level permissions: AWS requires "*"
        # for a state machine's logging (Step Functions docs, "IAM policies for logging").
        Sid    = "LogDelivery"
        Effect = "Allow"
        Action = [
          "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
          "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
          "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
        ]
        Resource = "*"
      },
      {
        # X-Ray has no resource-level permissions: AWS requires "*" here.
        Sid      = "XRayTracing"
        Effect   = "Allow"
        Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
        Resource = "*"
      },
    ]
  })
}

resource "aws_sfn_state_machine" "pipeline" {
  #checkov:skip=CKV_AWS_285:Execution history is logged at level ALL, without execution data (include_execution_data = false) on purpose: a step's input and output are kept out of the logs.
  name       = "${var.name_prefix}-pipeline"
  type       = "STANDARD"
  role_arn   = aws_iam_role.states.arn
  definition = local.state_machine_definition
  tags       = var.tags

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.states.arn}:*"
    include_execution_data = false # inputs and outputs hold batch ids and counts, never readings; kept out anyway
    level                  = "ALL"
  }

  tracing_configuration {
    enabled = true
  }

  depends_on = [aws_iam_role_policy.states]

  lifecycle {
    precondition {
      condition     = local.reserved_concurrency["bucket_task"] == -1 || local.reserved_concurrency["bucket_task"] >= var.map_max_concurrency
      error_message = "The bucket task's reserved concurrency is below map_max_concurrency: the Map's tasks would be throttled. Raise lambda_reserved_concurrency.bucket_task or lower map_max_concurrency."
    }
  }
}

# The schedule: EventBridge Scheduler starts a run; a start that fails is retried, then lands in
# the schedule's dead-letter queue.

resource "aws_iam_role" "scheduler" {
  name        = "${var.name_prefix}-pipeline-schedule"
  description = "GlucoseStream pipeline schedule"
  tags        = var.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "SchedulerAssumesTheRole"
      Effect    = "Allow"
      Principal = { Service = "scheduler.${local.dns_suffix}" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })
}

resource "aws_iam_role_policy" "scheduler" {
  name = "least-privilege"
  role = aws_iam_role.scheduler.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "StartPipelineRuns"
        Effect   = "Allow"
        Action   = ["states:StartExecution"]
        Resource = aws_sfn_state_machine.pipeline.arn
      },
      {
        Sid      = "DeadLetterQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = aws_sqs_queue.schedule_dlq.arn
      },
      {
        Sid      = "DeadLetterQueueKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.lake.arn
      },
    ]
  })
}

resource "aws_scheduler_schedule" "pipeline" {
  name                         = "${var.name_prefix}-pipeline"
  description                  = "Starts a GlucoseStream pipeline run"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = aws_kms_key.lake.arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_sfn_state_machine.pipeline.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({ trigger = "schedule" })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq.arn
    }
  }
}

# Maintenance: a schedule of its own calls the maintain function (compaction and snapshot expiry
# under the run lock: a call while a run holds it answers busy). Scheduler invokes a Lambda
# target asynchronously: a call it cannot make is retried, then lands in the schedules'
# dead-letter queue; a call that fails in the function is retried by Lambda, then lands in the
# functions' dead-letter queue, and the function's error alarm fires.

resource "aws_iam_role" "maintenance_scheduler" {
  name        = "${var.name_prefix}-maintenance-schedule"
  description = "GlucoseStream maintenance schedule"
  tags        = var.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "SchedulerAssumesTheRole"
      Effect    = "Allow"
      Principal = { Service = "scheduler.${local.dns_suffix}" }
      Action    = "sts:AssumeRole"
      Condition = {
        StringEquals = { "aws:SourceAccount" = local.account_id }
      }
    }]
  })
}

resource "aws_iam_role_policy" "maintenance_scheduler" {
  name = "least-privilege"
  role = aws_iam_role.maintenance_scheduler.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "InvokeMaintenance"
        Effect   = "Allow"
        Action   = ["lambda:InvokeFunction"]
        Resource = aws_lambda_function.this["maintain"].arn
      },
      {
        Sid      = "DeadLetterQueue"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = aws_sqs_queue.schedule_dlq.arn
      },
      {
        Sid      = "DeadLetterQueueKey"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = aws_kms_key.lake.arn
      },
    ]
  })
}

resource "aws_scheduler_schedule" "maintenance" {
  name                         = "${var.name_prefix}-maintenance"
  description                  = "Compacts the lake's tables and expires old snapshots"
  schedule_expression          = var.maintenance_schedule
  schedule_expression_timezone = var.schedule_timezone
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = aws_kms_key.lake.arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.this["maintain"].arn
    role_arn = aws_iam_role.maintenance_scheduler.arn
    input    = jsonencode({ trigger = "schedule" })

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.schedule_dlq.arn
    }
  }
}

# The run lock (one run at a time, across Lambdas and the local CLI on an S3 lake): a DynamoDB
# conditional write on the item "lake"; expires_at lets a crashed holder's lock lapse.
resource "aws_dynamodb_table" "lock" {
  name                        = "${var.name_prefix}-lock"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "lake"
  deletion_protection_enabled = var.lock_table_deletion_protection
  tags                        = var.tags

  attribute {
    name = "lake"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.lake.arn
  }

  point_in_time_recovery {
    enabled = true
  }
}
