# The HTTP API in front of ingest: every route behind the Lambda authorizer (the project's tokens),
# throttled, with access logs.

locals {
  routes = ["POST /v1/readings", "POST /api/v1/entries", "POST /api/v1/entries.json"]
}

resource "aws_apigatewayv2_api" "ingest" {
  name          = "${var.name_prefix}-ingest"
  description   = "GlucoseStream HTTP ingest"
  protocol_type = "HTTP"
  tags          = var.tags
}

# A REQUEST authorizer without identity sources: Nightscout clients send their secret in an
# `api-secret` header or a `token` query parameter, others a bearer token, so no one source is
# required and the authorizer itself answers 401 by returning {"isAuthorized": false}. Without
# identity sources nothing may be cached (TTL 0).
resource "aws_apigatewayv2_authorizer" "tokens" {
  api_id                            = aws_apigatewayv2_api.ingest.id
  name                              = "${var.name_prefix}-tokens"
  authorizer_type                   = "REQUEST"
  authorizer_uri                    = aws_lambda_function.this["authorizer"].invoke_arn
  authorizer_payload_format_version = "2.0"
  enable_simple_responses           = true
  authorizer_result_ttl_in_seconds  = 0
  identity_sources                  = []
}

resource "aws_apigatewayv2_integration" "ingest" {
  api_id                 = aws_apigatewayv2_api.ingest.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_function.this["ingest"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "ingest" {
  for_each           = toset(local.routes)
  api_id             = aws_apigatewayv2_api.ingest.id
  route_key          = each.value
  target             = "integrations/${aws_apigatewayv2_integration.ingest.id}"
  authorization_type = "CUSTOM"
  authorizer_id      = aws_apigatewayv2_authorizer.tokens.id
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.ingest.id
  name        = "$default"
  auto_deploy = true
  tags        = var.tags

  default_route_settings {
    throttling_rate_limit    = var.api_throttle_rate_limit
    throttling_burst_limit   = var.api_throttle_burst_limit
    detailed_metrics_enabled = true
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      ip                 = "$context.identity.sourceIp"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      latencyMs          = "$context.responseLatency"
      integrationStatus  = "$context.integrationStatus"
      integrationError   = "$context.integrationErrorMessage"
      authorizerError    = "$context.authorizer.error"
      authorizerStatus   = "$context.authorizer.status"
      authorizerLatency  = "$context.authorizer.latency"
      userAgent          = "$context.identity.userAgent"
      protocol           = "$context.protocol"
      integrationLatency = "$context.integrationLatency"
    })
  }
}

# API Gateway may call the ingest function on the three routes only, and the authorizer for this
# API's authorizer only.
resource "aws_lambda_permission" "ingest" {
  for_each      = toset(local.routes)
  statement_id  = "AllowHttpApi-${replace(replace(replace(each.value, " ", "-"), "/", "_"), ".", "_")}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["ingest"].function_name
  principal     = "apigateway.${local.dns_suffix}"
  source_arn    = "${aws_apigatewayv2_api.ingest.execution_arn}/*/${replace(each.value, " ", "")}"
}

resource "aws_lambda_permission" "authorizer" {
  statement_id  = "AllowHttpApiAuthorizer"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["authorizer"].function_name
  principal     = "apigateway.${local.dns_suffix}"
  source_arn    = "${aws_apigatewayv2_api.ingest.execution_arn}/authorizers/${aws_apigatewayv2_authorizer.tokens.id}"
}
