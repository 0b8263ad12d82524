output "api_url" {
  description = "Base URL of the HTTP ingest API."
  value       = module.glucosestream.api_url
}

output "bucket" {
  description = "The lake bucket."
  value       = module.glucosestream.bucket
}

output "lake_root" {
  description = "GLUCOSESTREAM_LAKE__ROOT of the deployed lake."
  value       = module.glucosestream.lake_root
}

output "athena_workgroup" {
  description = "The Athena workgroup."
  value       = module.glucosestream.athena_workgroup
}

output "state_machine_arn" {
  description = "The pipeline's state machine."
  value       = module.glucosestream.state_machine_arn
}

output "glue_databases" {
  description = "The Glue databases (curated, results)."
  value       = module.glucosestream.glue_databases
}

output "lock_table" {
  description = "The run lock table."
  value       = module.glucosestream.lock_table
}

output "secret_arn" {
  description = "The secret to put the runtime JSON in."
  value       = module.glucosestream.secret_arn
}

output "function_names" {
  description = "The Lambda functions by entry point."
  value       = module.glucosestream.function_names
}

output "environment" {
  description = "The functions' environment (also the local CLI's, to work on this lake)."
  value       = module.glucosestream.environment
}
