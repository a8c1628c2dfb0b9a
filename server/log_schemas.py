"""Request and response models of the query-log endpoints (feedback, article events)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

QUERY_ID = r"^[0-9a-f]{32}$"
ARTICLE_ID = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query_id: str = Field(pattern=QUERY_ID, description="the `query_id` of the search response")
    article_id: str = Field(max_length=80, pattern=ARTICLE_ID)
    useful: StrictBool = Field(description="true for 有用, false for 没用")
    comment: str | None = Field(None, max_length=500,
                                description="what was wrong; numbers in it are masked")


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query_id: str = Field(pattern=QUERY_ID)
    article_id: str = Field(max_length=80, pattern=ARTICLE_ID)
    kind: Literal["opened", "copied"] = Field(
        description="opened: the agent chose the article; copied: the agent copied its script")


class Logged(BaseModel):
    logged: bool = Field(description="false when the query log is off or its queue was full")
