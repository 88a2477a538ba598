"""The one-command pipeline: data -> space -> supernet -> search -> finetune -> export -> profile.

`config` holds every option (presets, TOML, command-line overrides), `stages`
runs the stages with skip/resume, and `report` turns their outputs into
report.md, report.html and summary.json.
"""
