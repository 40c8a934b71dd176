"""Template views of each object (42 or 162 icosphere views), cached on disk by mesh hash + settings."""

from novel_pose_ros.templates.build import BuildReport, ensure_library_templates, ensure_templates
from novel_pose_ros.templates.settings import TemplateSettings
from novel_pose_ros.templates.store import TemplateSet, TemplateView, load_template_set

__all__ = [
    "BuildReport", "TemplateSet", "TemplateSettings", "TemplateView",
    "ensure_library_templates", "ensure_templates", "load_template_set",
]
