"""Artifacts on disk: the content-addressed blob store and write-once model folders."""

from appliance.artifacts.folders import FolderFile, StagedFolder, publish_folder, stage_folder
from appliance.artifacts.store import ArtifactStore, Blob

__all__ = ["ArtifactStore", "Blob", "FolderFile", "StagedFolder", "publish_folder", "stage_folder"]
