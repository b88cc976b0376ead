"""Structured outputs of the QA prompts (JSON schemas the engine is constrained to)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class GeneratedQA(BaseModel):
    dimension: str = Field(min_length=1)
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    # Wrong answers known from facts (rules); a model may leave this empty.
    distractors: list[str] = Field(default_factory=list, max_length=3)


class QAList(BaseModel):
    qa: list[GeneratedQA] = Field(default_factory=list, max_length=40)


class AtomicQA(BaseModel):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class Refined(BaseModel):
    questions: list[AtomicQA] = Field(default_factory=list, max_length=4)  # empty: drop the QA


class OptionSet(BaseModel):
    options: list[str] = Field(min_length=4, max_length=4)
    answer_choice: Literal["A", "B", "C", "D"]
