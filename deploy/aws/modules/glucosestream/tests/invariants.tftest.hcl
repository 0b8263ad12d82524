# The module's invariants besides its policies (policies.tftest.hcl): storage (encryption with the
# lake key, TLS only, no public access, versions, lifecycle, access logs); catalog and query;
# compute, API and orchestration; operations; and variables that refuse a wrong deployment.
# One file: terraform starts the provider for each file, which costs more than a run.
mock_provider "aws" {
  source = "./tests/mocks"
}

override_resource {
  target = aws_iam_role.scheduler
  values = { arn = "arn:aws:iam::123456789012:role/glucosestream-pipeline-schedule" }
}
override_resource {
  target = aws_iam_role.maintenance_scheduler
  values = { arn = "arn:aws:iam::123456789012:role/glucosestream-maintenance-schedule" }
}

variables {
  image_uri = "123456789012.dkr.ecr.eu-central-1.amazonaws.com/glucosestream@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

# Storage

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

# Catalog, query, compute, API, orchestration and operations

run "athena_enforces_encrypted_results_under_the_lake_and_a_scan_cutoff" {
  variables {
    athena_bytes_scanned_cutoff = 5368709120
  }

  assert {
    condition     = one(aws_athena_workgroup.analysts.configuration).enforce_workgroup_configuration
    error_message = "The workgroup does not enforce its configuration (a client could pick its own result location and encryption)."
  }
  assert {
    condition     = one(aws_athena_workgroup.analysts.configuration).bytes_scanned_cutoff_per_query == 5368709120
    error_message = "The per-query scan cutoff is not the variable's."
  }
  assert {
    condition     = one(one(aws_athena_workgroup.analysts.configuration).result_configuration).output_location == "s3://${aws_s3_bucket.lake.id}/athena-results/"
    error_message = "Athena's results are not under s3://<lake bucket>/athena-results/."
  }
  assert {
    condition = one(one(one(aws_athena_workgroup.analysts.configuration).result_configuration).encryption_configuration) == {
      encryption_option = "SSE_KMS"
      kms_key_arn       = aws_kms_key.lake.arn
    }
    error_message = "Athena's results are not encrypted with SSE-KMS and the lake key."
  }
  assert {
    condition     = length(aws_athena_named_query.view) == length(fileset(".", "athena/*.sql")) && length(aws_athena_named_query.view) >= 3
    error_message = "Not every athena/*.sql is a named query (daily_metrics, period_summaries, triage_list at least)."
  }
  assert {
    condition = alltrue([
      for q in aws_athena_named_query.view : q.database == aws_glue_catalog_database.results.name
      && !can(regex("(^|[^A-Za-z0-9_])(curated|results)\\.", q.query))
      && q.workgroup == aws_athena_workgroup.analysts.id
    ])
    error_message = "A named query names an unprefixed database, or is not in the results database and the workgroup."
  }
  assert {
    condition     = [aws_glue_catalog_database.curated.name, aws_glue_catalog_database.results.name] == ["gs_curated", "gs_results"]
    error_message = "The Glue databases are not <namespace_prefix>curated and <namespace_prefix>results."
  }
}

run "every_route_goes_through_the_lambda_authorizer" {
  assert {
    condition     = sort(keys(aws_apigatewayv2_route.ingest)) == sort(["POST /v1/readings", "POST /api/v1/entries", "POST /api/v1/entries.json"])
    error_message = "The API's routes are not the three ingest routes."
  }
  assert {
    condition = alltrue([
      for route in aws_apigatewayv2_route.ingest : route.authorization_type == "CUSTOM" && route.authorizer_id == aws_apigatewayv2_authorizer.tokens.id
      && route.target == "integrations/${aws_apigatewayv2_integration.ingest.id}"
    ])
    error_message = "A route is not authorised by the Lambda authorizer, or does not reach ingest."
  }
  assert {
    condition = (
      aws_apigatewayv2_authorizer.tokens.authorizer_type == "REQUEST"
      && aws_apigatewayv2_authorizer.tokens.authorizer_payload_format_version == "2.0"
      && aws_apigatewayv2_authorizer.tokens.enable_simple_responses
      && length(coalesce(aws_apigatewayv2_authorizer.tokens.identity_sources, [])) == 0
      && aws_apigatewayv2_authorizer.tokens.authorizer_result_ttl_in_seconds == 0
      && aws_apigatewayv2_authorizer.tokens.authorizer_uri == aws_lambda_function.this["authorizer"].invoke_arn
    )
    error_message = "The authorizer is not the authorizer function as a REQUEST, payload 2.0, simple-response authorizer without identity sources or caching."
  }
  assert {
    condition     = aws_apigatewayv2_integration.ingest.integration_uri == aws_lambda_function.this["ingest"].invoke_arn
    error_message = "The routes do not reach the ingest function."
  }
  assert {
    condition = (
      one(aws_apigatewayv2_stage.default.default_route_settings).throttling_rate_limit == var.api_throttle_rate_limit
      && one(aws_apigatewayv2_stage.default.default_route_settings).throttling_burst_limit == var.api_throttle_burst_limit
      && aws_apigatewayv2_stage.default.name == "$default" && aws_apigatewayv2_stage.default.auto_deploy
    )
    error_message = "The $default stage is not auto-deployed and throttled."
  }
  assert {
    condition     = one(aws_apigatewayv2_stage.default.access_log_settings).destination_arn == aws_cloudwatch_log_group.api.arn
    error_message = "The API's access logs do not go to its log group."
  }
}

run "the_map_runs_the_bucket_task_function" {
  assert {
    condition = [
      for state in values(jsondecode(aws_sfn_state_machine.pipeline.definition).States) : (
        strcontains(jsonencode(try(state.ItemProcessor, state.Iterator)), aws_lambda_function.this["bucket_task"].arn)
        && !anytrue([for key in ["plan", "publish", "fail"] : strcontains(jsonencode(try(state.ItemProcessor, state.Iterator)), aws_lambda_function.this[key].arn)])
      ) if state.Type == "Map"
    ] == [true]
    error_message = "The state machine has not exactly one Map, or its tasks are not (only) the bucket_task function."
  }
  assert {
    condition = alltrue([
      for key in ["plan", "publish", "fail"] : strcontains(aws_sfn_state_machine.pipeline.definition, aws_lambda_function.this[key].arn)
    ])
    error_message = "The state machine does not call plan, publish and fail."
  }
  assert {
    condition = (
      aws_sfn_state_machine.pipeline.type == "STANDARD"
      && one(aws_sfn_state_machine.pipeline.logging_configuration).level == "ALL"
      && !one(aws_sfn_state_machine.pipeline.logging_configuration).include_execution_data
      && one(aws_sfn_state_machine.pipeline.logging_configuration).log_destination == "${aws_cloudwatch_log_group.states.arn}:*"
      && one(aws_sfn_state_machine.pipeline.tracing_configuration).enabled
    )
    error_message = "The state machine is not STANDARD, logged (ALL, no execution data) and traced."
  }
  assert {
    condition = (
      one(aws_scheduler_schedule.pipeline.target).arn == aws_sfn_state_machine.pipeline.arn
      && one(one(aws_scheduler_schedule.pipeline.target).dead_letter_config).arn == aws_sqs_queue.schedule_dlq.arn
      && one(one(aws_scheduler_schedule.pipeline.target).retry_policy).maximum_retry_attempts > 0
    )
    error_message = "The schedule does not start the state machine with retries and a dead-letter queue."
  }
  assert {
    condition = jsonencode({
      for key, fn in aws_lambda_function.this : key => one(fn.image_config).command
      }) == jsonencode({
      ingest      = ["glucosestream.aws.handlers.ingest"]
      authorizer  = ["glucosestream.aws.handlers.authorize"]
      plan        = ["glucosestream.aws.handlers.plan"]
      bucket_task = ["glucosestream.aws.handlers.bucket_task"]
      publish     = ["glucosestream.aws.handlers.publish"]
      fail        = ["glucosestream.aws.handlers.fail"]
      maintain    = ["glucosestream.aws.handlers.maintain"]
    })
    error_message = "The functions' image commands are not the contract's handlers."
  }
  assert {
    condition = alltrue([
      for fn in aws_lambda_function.this : fn.package_type == "Image" && fn.image_uri == var.image_uri
      && one(fn.tracing_config).mode == "Active" && one(fn.dead_letter_config).target_arn == aws_sqs_queue.lambda_dlq.arn
      && fn.environment[0].variables["GLUCOSESTREAM_LAKE__LOCK_URL"] == "dynamodb://${aws_dynamodb_table.lock.name}"
      && fn.environment[0].variables["GLUCOSESTREAM_LAKE__ROOT"] == "s3://${aws_s3_bucket.lake.id}/lake"
      && fn.environment[0].variables["GLUCOSESTREAM_PIPELINE__TASK_MEMORY_MB"] == tostring(aws_lambda_function.this["bucket_task"].memory_size)
    ])
    error_message = "A function is not the image, traced, with a dead-letter queue and the lake's environment."
  }
  assert {
    condition     = aws_lambda_function.this["bucket_task"].memory_size == max([for fn in aws_lambda_function.this : fn.memory_size]...)
    error_message = "The bucket task should have the most memory."
  }
  assert {
    condition = (
      aws_dynamodb_table.lock.hash_key == "lake" && one(aws_dynamodb_table.lock.ttl).attribute_name == "expires_at"
      && one(aws_dynamodb_table.lock.point_in_time_recovery).enabled && aws_dynamodb_table.lock.billing_mode == "PAY_PER_REQUEST"
    )
    error_message = "The lock table is not the contract's (hash key lake, TTL expires_at, on-demand, point-in-time recovery)."
  }
}

run "every_log_group_has_retention_and_the_key_and_failures_alarm" {
  variables {
    log_retention_days = 90
  }

  assert {
    condition = alltrue([
      for group in concat(values(aws_cloudwatch_log_group.function), [aws_cloudwatch_log_group.states, aws_cloudwatch_log_group.api]) :
      group.retention_in_days == 90 && group.kms_key_id == aws_kms_key.lake.arn
    ])
    error_message = "A log group lacks the retention variable's value or the lake key."
  }
  assert {
    condition = alltrue([
      for key, fn in aws_lambda_function.this : aws_cloudwatch_log_group.function[key].name == "/aws/lambda/${fn.function_name}"
    ])
    error_message = "A function's log group is not the one Lambda writes to (/aws/lambda/<function name>)."
  }
  assert {
    condition = alltrue([
      for metric in ["AWS/States ExecutionsFailed", "AWS/States ExecutionsTimedOut", "AWS/ApiGateway 5xx", "AWS/Lambda Errors"] :
      contains([for alarm in aws_cloudwatch_metric_alarm.this : "${alarm.namespace} ${alarm.metric_name}"], metric)
    ])
    error_message = "An alarm is missing: failed or timed-out runs, ingest 5xx, Lambda errors."
  }
  assert {
    condition = toset([
      for alarm in aws_cloudwatch_metric_alarm.this : alarm.dimensions.QueueName if alarm.metric_name == "ApproximateNumberOfMessagesVisible"
    ]) == toset([aws_sqs_queue.lambda_dlq.name, aws_sqs_queue.schedule_dlq.name])
    error_message = "A dead-letter queue has no depth alarm."
  }
  assert {
    condition = sort([
      for alarm in aws_cloudwatch_metric_alarm.this : alarm.dimensions.FunctionName if alarm.namespace == "AWS/Lambda" && alarm.metric_name == "Errors"
    ]) == sort([for fn in aws_lambda_function.this : fn.function_name])
    error_message = "A function has no error alarm (or an error alarm watches no function of the module)."
  }
  assert {
    condition     = alltrue([for alarm in aws_cloudwatch_metric_alarm.this : alarm.alarm_actions == toset([aws_sns_topic.alarms.arn])])
    error_message = "An alarm does not notify the alarm topic."
  }
}

run "maintenance_runs_daily_on_a_schedule_of_its_own" {
  variables {
    lambda_memory_mb = { bucket_task = 8192 }
  }

  assert {
    condition = (
      jsonencode(one(aws_lambda_function.this["maintain"].image_config).command) == jsonencode(["glucosestream.aws.handlers.maintain"])
      && aws_lambda_function.this["maintain"].timeout == 900
      && aws_lambda_function.this["maintain"].reserved_concurrent_executions == 1
      && aws_lambda_function.this["maintain"].memory_size == 8192
    )
    error_message = "The maintain function is not the image's maintain handler, with 900 s, one at a time, the bucket task's memory."
  }
  assert {
    condition = (
      aws_scheduler_schedule.maintenance.schedule_expression == "cron(30 3 * * ? *)"
      && aws_scheduler_schedule.maintenance.state == "ENABLED"
      && aws_scheduler_schedule.maintenance.kms_key_arn == aws_kms_key.lake.arn
      && one(aws_scheduler_schedule.maintenance.target).arn == aws_lambda_function.this["maintain"].arn
      && one(aws_scheduler_schedule.maintenance.target).role_arn == aws_iam_role.maintenance_scheduler.arn
      && one(one(aws_scheduler_schedule.maintenance.target).dead_letter_config).arn == aws_sqs_queue.schedule_dlq.arn
      && one(one(aws_scheduler_schedule.maintenance.target).retry_policy).maximum_retry_attempts > 0
    )
    error_message = "The maintenance schedule does not call the maintain function daily, with its own role, retries, the schedules' dead-letter queue and the lake key."
  }
  assert {
    condition     = aws_cloudwatch_log_group.function["maintain"].name == "/aws/lambda/${aws_lambda_function.this["maintain"].function_name}"
    error_message = "The maintain function has no log group of its own."
  }
}

# Variables refuse values that would deploy something wrong.

run "a_name_prefix_that_cannot_be_a_bucket_name_is_refused" {
  command = plan
  variables {
    name_prefix = "GlucoStream_Prod"
  }
  expect_failures = [var.name_prefix]
}

run "a_retention_cloudwatch_does_not_offer_is_refused" {
  command = plan
  variables {
    log_retention_days = 42
  }
  expect_failures = [var.log_retention_days]
}

run "a_timeout_over_the_api_gateway_limit_is_refused" {
  command = plan
  variables {
    lambda_timeout_s = { ingest = 60 }
  }
  expect_failures = [var.lambda_timeout_s]
}

run "raw_batches_cannot_be_archived_before_their_infrequent_access_month_ends" {
  command = plan
  variables {
    raw_infrequent_access_days = 60
    raw_archive_days           = 75
  }
  expect_failures = [aws_s3_bucket_lifecycle_configuration.lake]
}

run "a_map_wider_than_the_bucket_tasks_reserved_concurrency_is_refused" {
  command = plan
  variables {
    map_max_concurrency         = 20
    lambda_reserved_concurrency = { bucket_task = 5 }
  }
  expect_failures = [aws_sfn_state_machine.pipeline]
}
