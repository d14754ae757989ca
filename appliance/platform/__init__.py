"""Platform metrics across workspaces (a workspace is a team's space): adoption, user happiness
(platform ratings), capabilities coverage and cost per user, read from the registry, plus the
platform ratings themselves. `report.platform_report` puts them together."""
