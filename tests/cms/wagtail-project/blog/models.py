"""A blog index (lists its posts and their tags) and blog posts with tags."""

from django.db import models
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey
from taggit.models import TaggedItemBase
from wagtail.admin.panels import FieldPanel
from wagtail.models import Page


class BlogPostTag(TaggedItemBase):
    content_object = ParentalKey("blog.BlogPost", related_name="tagged_items", on_delete=models.CASCADE)


class BlogIndex(Page):
    subpage_types = ["blog.BlogPost"]

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["posts"] = BlogPost.objects.child_of(self).live().order_by("-first_published_at", "-id")
        return context


class BlogPost(Page):
    body = models.TextField(blank=True)
    tags = ClusterTaggableManager(through=BlogPostTag, blank=True)
    content_panels = Page.content_panels + [FieldPanel("body"), FieldPanel("tags")]
    parent_page_types = ["blog.BlogIndex"]
