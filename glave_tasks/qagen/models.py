"""Structured outputs of the QA prompts (JSON schemas the engine is constrained to)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..schemas import SCENE_DIMENSIONS, VIDEO_DIMENSIONS

# The dimension is an enum in the JSON schema, so a constrained engine cannot invent one.
SceneDimension = Literal[tuple(SCENE_DIMENSIONS)]
VideoDimension = Literal[tuple(VIDEO_DIMENSIONS)]


class GeneratedQA(BaseModel):
    dimension: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    # Wrong answers known from facts (rules); a model may leave this empty.
    distractors: list[str] = Field(default_factory=list, max_length=3)


class SceneQA(GeneratedQA):
    dimension: SceneDimension


class VideoQA(GeneratedQA):
    dimension: VideoDimension


class SceneQAList(BaseModel):
    qa: list[SceneQA] = Field(default_factory=list, max_length=len(SCENE_DIMENSIONS))


class VideoQAList(BaseModel):
    qa: list[VideoQA] = Field(default_factory=list, max_length=4 * len(VIDEO_DIMENSIONS))


class AtomicQA(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class Refined(BaseModel):
    questions: list[AtomicQA] = Field(default_factory=list, max_length=4)  # empty: drop the QA


class OptionSet(BaseModel):
    options: list[str] = Field(min_length=4, max_length=4)
    answer_choice: Literal["A", "B", "C", "D"]
