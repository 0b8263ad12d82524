# The AWS provider's mocked data sources and computed values, shared by the module's terraform tests.
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

# Distinct log group ARNs where a test tells them apart.
override_resource {
  target = aws_cloudwatch_log_group.api
  values = { arn = "arn:aws:logs:eu-central-1:123456789012:log-group:/aws/apigateway/glucosestream-ingest" }
}
override_resource {
  target = aws_cloudwatch_log_group.states
  values = { arn = "arn:aws:logs:eu-central-1:123456789012:log-group:/aws/vendedlogs/states/glucosestream-pipeline" }
}
# The maintenance schedule's target must be an ARN (the other functions' stay random).
override_resource {
  target = aws_lambda_function.this["maintain"]
  values = { arn = "arn:aws:lambda:eu-central-1:123456789012:function:glucosestream-maintain" }
}
