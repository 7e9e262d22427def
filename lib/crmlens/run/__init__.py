"""`crmlens run`: papermill over every notebook × region × period, with provenance, reports and exports.

Modules: `plan` (the task matrix, checked before any kernel starts), `provenance` (data fingerprint, code
and package versions), `kernels` (pre-started kernels), `execute` (one task: papermill, retries, HTML),
`runner` (threads or a Dask cluster, progress, resume, manifest), `exports`, `index`, `diff`.
Layout and manifest: docs/run.md.
"""
