# Catalog and query: the Glue databases the pipeline's Iceberg catalog registers its tables in,
# the Athena workgroup, and the analysts' views as named queries.

resource "aws_glue_catalog_database" "curated" {
  name        = local.curated_db
  description = "GlucoseStream curated zone: Iceberg tables registered by the pipeline (readings and its derived tables)"
  tags        = var.tags
}

resource "aws_glue_catalog_database" "results" {
  name        = local.results_db
  description = "GlucoseStream results zone: Iceberg tables of published metrics, and the analysts' views"
  tags        = var.tags
}

resource "aws_athena_workgroup" "analysts" {
  name          = var.name_prefix
  description   = "GlucoseStream analysts and dashboards: results encrypted with the lake key, a per-query scan limit"
  state         = "ENABLED"
  force_destroy = var.force_destroy
  tags          = var.tags

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location       = "s3://${aws_s3_bucket.lake.id}/athena-results/"
      expected_bucket_owner = local.account_id

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.lake.arn
      }
    }
  }
}

locals {
  # athena/<view>.sql name the databases `curated` and `results`; here they get the prefix.
  athena_files = fileset("${path.module}/athena", "*.sql")
  athena_views = {
    for file in local.athena_files : trimsuffix(file, ".sql") => replace(
      file("${path.module}/athena/${file}"), "/\\b(curated|results)\\./", "${var.namespace_prefix}$1."
    )
  }
}

resource "aws_athena_named_query" "view" {
  for_each    = local.athena_views
  name        = "${var.name_prefix}-${each.key}"
  description = "GlucoseStream view ${each.key} (deploy/aws/modules/glucosestream/athena/${each.key}.sql); run it once to create or replace the view."
  workgroup   = aws_athena_workgroup.analysts.id
  database    = aws_glue_catalog_database.results.name
  query       = each.value
}
