"""Hand-written, real-looking videos for evaluation tests: scene captions as a good captioner would
write them, one-line scene hints, and four-option questions whose correct option the caption
supports (in other words than the option's) while the distractors are plausible but unsupported.

From one story per video the tests build both a GLaVE-1.2M record (the run's own QA) and a
benchmark annotation file in the published shape (``scene_hint`` + ``qa``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LETTERS = "ABCD"


@dataclass(frozen=True)
class Q:
    scene: int  # -1: whole video
    dimension: str
    question: str
    correct: str
    distractors: tuple[str, str, str]


@dataclass(frozen=True)
class Story:
    video_id: str
    hints: tuple[str, ...]
    scenes: tuple[str, ...]
    questions: tuple[Q, ...]

    @property
    def caption(self) -> str:
        return " ".join(self.scenes)


STORIES: tuple[Story, ...] = (
    Story(
        "noodle-stall",
        ("A cook prepares noodles at a night-market stall.", "A customer eats at a folding table beside the stall."),
        ("At a crowded night market lit by strings of red paper lanterns, a cook in a white apron and a black cap "
         "stands behind a steel counter. He tosses a handful of fresh yellow noodles into a large wok over a roaring "
         "gas flame, then adds sliced green onions and bean sprouts. Steam rises thickly around his face as he stirs "
         "with long wooden chopsticks. The camera holds a close-up of the wok while the flames flare orange.",
         "A young woman in a denim jacket sits at a small folding table next to the stall. She lifts the noodles with "
         "chopsticks, blows on them and smiles after the first bite. Behind her, other customers wait in a queue "
         "under the lanterns. The camera slowly pans from her bowl to the line of people."),
        (
            Q(0, "Description-Human", "What is the cook wearing?", "A white apron and a black cap",
              ("A red shirt and a straw hat", "A blue chef's jacket and a hairnet", "A green hoodie and sunglasses")),
            Q(0, "Description-Object", "What does the cook use to stir the food?", "Long wooden chopsticks",
              ("A metal ladle", "A plastic spatula", "A pair of steel tongs")),
            Q(0, "Description-Scene", "How is the market lit?", "By strings of red paper lanterns",
              ("By bright white floodlights", "By neon signs in blue and pink", "By daylight from an open sky")),
            Q(0, "Camera Shot", "How does the camera frame the wok?", "In a close-up while the flames flare",
              ("In a wide aerial shot of the whole market", "From far away behind the queue", "In a split-screen view")),
            Q(1, "Description-Human", "What is the young woman wearing?", "A denim jacket",
              ("A yellow raincoat", "A formal black dress", "A striped football jersey")),
            Q(1, "Camera Direction", "How does the camera move in the eating scene?",
              "It pans slowly from her bowl to the queue of people",
              ("It zooms rapidly into the cook's face", "It tilts up to the night sky",
               "It stays completely still on the table")),
            Q(-1, "Time Order", "What happens after the noodles are cooked?",
              "A young woman eats them at a table next to the stall",
              ("The cook closes the stall and leaves", "The noodles are packed into delivery boxes",
               "A dog steals the bowl from the counter")),
            Q(-1, "Plot Understanding", "What is the video mainly about?",
              "Street food being cooked and eaten at a night market",
              ("A cooking competition on television", "A farmer harvesting wheat", "A restaurant kitchen inspection")),
        ),
    ),
    Story(
        "forest-ride",
        ("A mountain biker rides down a forest trail.", "The biker jumps a wooden ramp and stops by a lake."),
        ("A mountain biker in a bright orange helmet and a grey jersey rides down a narrow dirt trail through a dense "
         "pine forest. Sunlight breaks through the branches in narrow beams. The camera is mounted on the handlebars, "
         "so the front wheel bounces over roots and loose stones in the lower part of the frame. Two other riders "
         "follow a short distance behind.",
         "The biker launches off a wooden ramp, flies through the air for a moment and lands smoothly on the packed "
         "earth. He then brakes hard and skids to a stop on a gravel shore beside a calm blue lake. He takes off his "
         "helmet and raises one fist. A drone shot rises above the lake and shows the forest around it."),
        (
            Q(0, "Description-Human", "What colour is the biker's helmet?", "Bright orange",
              ("Matte black", "Pale blue", "White with red stripes")),
            Q(0, "Description-Scene", "Where does the ride take place?", "On a narrow dirt trail through a pine forest",
              ("On a paved city street", "Along a sandy beach", "Inside an indoor velodrome")),
            Q(0, "Camera Shot", "Where is the camera in the first scene?", "Mounted on the handlebars of the bike",
              ("Held by a spectator beside the trail", "On a tripod at the finish line", "Inside a car driving ahead")),
            Q(0, "Count", "How many other riders follow the biker?", "Two other riders",
              ("No other riders", "Five other riders", "One other rider")),
            Q(1, "Fine Grained Action", "What does the biker do at the wooden ramp?",
              "He launches off it, flies through the air and lands smoothly",
              ("He stops and walks the bike around it", "He falls off and hurts his arm", "He rides underneath it")),
            Q(1, "Description-Scene", "Where does the biker stop?", "On a gravel shore beside a calm blue lake",
              ("In a crowded parking lot", "At the top of a snowy peak", "Inside a bike repair shop")),
            Q(-1, "Causal", "Why does the biker raise one fist at the end?",
              "He celebrates after landing the jump and finishing the ride",
              ("He is signalling a left turn to traffic", "He is angry at the other riders",
               "He is asking for help after a crash")),
            Q(-1, "Camera Direction", "How is the last view of the video filmed?", "A drone shot rising above the lake",
              ("A handheld shot walking into the forest", "A slow-motion shot of the wheel", "A static shot from inside a tent")),
        ),
    ),
    Story(
        "chem-demo",
        ("A teacher prepares a chemistry demonstration in a classroom.", "The solution changes colour and the students react."),
        ("In a bright school laboratory, a teacher with grey hair and round glasses wears a long white lab coat and "
         "purple gloves. She pours a clear liquid from a graduated cylinder into a large glass flask on the bench. "
         "Rows of students in blue uniforms sit behind the bench and watch. A periodic table hangs on the wall "
         "behind her.",
         "She adds three drops from a small dropper bottle, and the liquid in the flask suddenly turns deep purple. "
         "The students lean forward and several of them clap. The teacher swirls the flask gently and holds it up "
         "to the light. The camera zooms in on the purple liquid."),
        (
            Q(0, "Description-Human", "What is the teacher wearing?", "A long white lab coat and purple gloves",
              ("A red sweater and no gloves", "A business suit and a tie", "A yellow safety vest and a helmet")),
            Q(0, "Description-Object", "What does the teacher pour the liquid into?", "A large glass flask",
              ("A metal bucket", "A plastic cup", "A ceramic teapot")),
            Q(0, "Spatial", "What hangs on the wall behind the teacher?", "A periodic table",
              ("A world map", "A clock", "A painting of the sea")),
            Q(1, "Count", "How many drops does the teacher add?", "Three drops",
              ("One drop", "Ten drops", "Six drops")),
            Q(1, "Attribute Change", "How does the liquid change after the drops are added?",
              "It turns from clear to deep purple",
              ("It starts to boil and overflow", "It freezes into ice", "It turns bright green and smokes")),
            Q(1, "Fine Grained Action", "What do several students do when the colour changes?", "They clap",
              ("They run out of the room", "They cover their ears", "They write on the blackboard")),
            Q(1, "Camera Shot", "How does the camera end the demonstration?", "It zooms in on the purple liquid",
              ("It cuts to the school entrance", "It pulls back to show the whole building", "It turns to the window")),
            Q(-1, "Temporal", "What happens before the liquid changes colour?",
              "The teacher pours a clear liquid into the flask and adds drops",
              ("The students leave the classroom", "The teacher lights a candle", "The lights are switched off")),
        ),
    ),
    Story(
        "dog-agility",
        ("A border collie runs an agility course.", "The dog finishes and gets a reward from its handler."),
        ("On a green grass arena surrounded by spectators on metal bleachers, a black and white border collie sprints "
         "through a bright yellow tunnel. It weaves between twelve upright poles without missing one, while its handler, "
         "a tall man in a red tracksuit, runs alongside and points the way. A large digital timer at the edge of the "
         "field counts the seconds.",
         "The collie leaps over the final blue hurdle and crosses the finish line. The handler kneels down and gives "
         "the dog a small tennis ball as a reward, and the dog wags its tail. The crowd on the bleachers stands up "
         "and cheers. The timer stops at thirty-one seconds."),
        (
            Q(0, "Description-Object", "What does the dog run through first?", "A bright yellow tunnel",
              ("A ring of fire", "A muddy puddle", "A wooden door")),
            Q(0, "Count", "How many poles does the dog weave between?", "Twelve poles",
              ("Four poles", "Twenty poles", "Seven poles")),
            Q(0, "Description-Human", "What is the handler wearing?", "A red tracksuit",
              ("A grey business suit", "A green raincoat", "A white lab coat")),
            Q(0, "Spatial", "Where is the timer?", "At the edge of the field",
              ("On the dog's collar", "In the handler's hand", "Hanging from the roof of a hall")),
            Q(1, "Fine Grained Action", "What does the handler give the dog after the finish?", "A small tennis ball",
              ("A bowl of water", "A bone-shaped biscuit", "A medal on a ribbon")),
            Q(1, "Description-Object", "What colour is the final hurdle?", "Blue",
              ("Orange", "Purple", "Black")),
            Q(1, "Visual-cue", "What time does the timer show at the end?", "Thirty-one seconds",
              ("Nine seconds", "Two minutes", "Fifty-five seconds")),
            Q(-1, "Plot Understanding", "What is the video about?", "A border collie completing a dog agility course",
              ("A horse race on a dirt track", "A cat sleeping on a sofa", "Sheep being sheared on a farm")),
        ),
    ),
    Story(
        "pottery-wheel",
        ("Hands shape clay on a spinning pottery wheel.", "The finished bowl is cut off the wheel and set on a shelf."),
        ("In a small sunlit studio with white brick walls, two hands covered in wet grey clay press down on a lump "
         "spinning on a pottery wheel. The thumbs open a hollow in the middle and the walls slowly rise into the shape "
         "of a bowl. A bucket of murky water and a yellow sponge sit beside the wheel. The camera looks straight down "
         "from above.",
         "The potter pulls a thin wire under the bowl to cut it free from the wheel head. She lifts it carefully with "
         "both hands and places it on a wooden shelf next to a row of unglazed cups. Dust floats in the sunlight from "
         "the window. The video ends on a still shot of the shelf."),
        (
            Q(0, "Description-Scene", "What are the walls of the studio like?", "White brick walls",
              ("Dark wooden panels", "Glass walls with a city view", "Green tiles")),
            Q(0, "Description-Object", "What sits beside the wheel?", "A bucket of murky water and a yellow sponge",
              ("A laptop and a cup of coffee", "A bag of flour and a rolling pin", "A box of paintbrushes")),
            Q(0, "Camera Direction", "From where does the camera film the wheel?", "Straight down from above",
              ("From below the wheel", "From across the street", "From behind a window outside")),
            Q(0, "Attribute Change", "How does the lump of clay change?", "It is hollowed out and its walls rise into a bowl",
              ("It is painted bright red", "It cracks into many pieces", "It is rolled into a long rope")),
            Q(1, "Fine Grained Action", "How does the potter free the bowl from the wheel?",
              "She pulls a thin wire under it",
              ("She hits it with a hammer", "She pours hot water over it", "She uses a kitchen knife from above")),
            Q(1, "Spatial", "Where is the bowl placed?", "On a wooden shelf next to unglazed cups",
              ("Inside a hot kiln", "On the floor by the door", "In a cardboard box for shipping")),
            Q(1, "Camera Shot", "How does the video end?", "On a still shot of the shelf",
              ("On a close-up of the potter's face", "On a fast pan across the street", "On a black screen with credits")),
            Q(-1, "Causal", "Why are the potter's hands grey?", "They are covered in wet grey clay",
              ("She is wearing grey gloves", "The lighting is very dark", "She has painted them for a show")),
        ),
    ),
    Story(
        "harbour-storm",
        ("A calm harbour with fishing boats in the morning.", "A storm arrives and waves hit the harbour wall."),
        ("A time-lapse shows a quiet harbour at sunrise. Small wooden fishing boats painted blue and white are tied to "
         "a stone pier, and seagulls circle above the masts. The sea is flat and reflects the pink sky. A fisherman in "
         "yellow boots carries a crate of fish along the pier.",
         "Dark clouds roll in from the left side of the frame and the light turns grey. Rain begins to fall and tall "
         "waves crash against the harbour wall, throwing white spray into the air. The boats rock violently on their "
         "ropes. Lightning flashes once over the horizon."),
        (
            Q(0, "Description-Object", "What are the fishing boats like?", "Small wooden boats painted blue and white",
              ("Large steel cargo ships", "Inflatable orange rafts", "Sleek white yachts with sails")),
            Q(0, "Description-Scene", "What is the sea like at sunrise?", "Flat, reflecting the pink sky",
              ("Rough with huge waves", "Frozen over with ice", "Brown and muddy")),
            Q(0, "Description-Human", "What is the fisherman wearing on his feet?", "Yellow boots",
              ("Black leather shoes", "Bare feet", "Red sneakers")),
            Q(0, "Fine Grained Action", "What does the fisherman carry?", "A crate of fish",
              ("A fishing rod", "A sleeping child", "A bicycle")),
            Q(1, "Object Direction", "From which side do the dark clouds come?", "From the left side of the frame",
              ("From the right side of the frame", "From below the horizon", "From directly behind the camera")),
            Q(1, "Attribute Change", "How does the light change when the storm arrives?", "It turns grey",
              ("It turns bright golden", "It becomes completely dark", "It flickers in many colours")),
            Q(1, "Count", "How many times does lightning flash?", "Once",
              ("Five times", "Twice", "It never flashes")),
            Q(-1, "Temporal", "How does the weather change over the video?", "From a calm sunrise to a rainy storm",
              ("From a storm to a calm sunny day", "From snow to heat", "It stays calm the whole time")),
        ),
    ),
)


def _options(q: Q, k: int) -> tuple[list[str], str]:
    """Four options with the correct one at a rotating position (letters stay uniform)."""
    pos = k % 4
    texts = list(q.distractors)
    texts.insert(pos, q.correct)
    return [f"{LETTERS[i]}. {t}" for i, t in enumerate(texts)], LETTERS[pos]


def record(story: Story) -> dict[str, Any]:
    """The story as a GLaVE-1.2M record whose own QA are the story's questions."""
    scene_list: dict[str, Any] = {}
    general: dict[str, Any] = {}
    for i, (hint, cap) in enumerate(zip(story.hints, story.scenes)):
        scene_list[str(i)] = {"frame_range": [2 * i, 2 * i + 1], "scene_hint": hint, "caption": cap, "QA_pair": {}}
    for k, q in enumerate(story.questions):
        opts, letter = _options(q, k)
        entry = {"Question": q.question, "Answer": q.correct, "Dimension": q.dimension, "Options": opts,
                 "Answer_choices": letter}
        target = general if q.scene == -1 else scene_list[str(q.scene)]["QA_pair"]
        target[str(len(target))] = entry
    n = 2 * len(story.scenes)
    return {"different": ["d"] * n, "attention": ["a"] * n, "merged": ["m"] * n,
            "overview_caption": story.caption[:200], "scene_list": scene_list, "general_qa": general,
            "caption": story.caption}


def annotation(story: Story) -> dict[str, Any]:
    """The story's questions in the benchmark's published annotation shape. Like the published
    files, scene indices are written sometimes as strings and sometimes as integers."""
    qa = {}
    for k, q in enumerate(story.questions):
        opts, letter = _options(q, k)
        qid = f"{story.video_id}_{k}"
        scene: int | str = str(q.scene) if k % 3 else q.scene
        qa[qid] = {"id": qid, "scene": scene, "dimension": q.dimension, "question": q.question, "options": opts,
                   "answer": letter}
    return {"scene_hint": {str(i): h for i, h in enumerate(story.hints)}, "qa": qa}


def write_records(folder: Path, stories: tuple[Story, ...] = STORIES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in stories:
        (folder / f"{s.video_id}.json").write_text(json.dumps(record(s), indent=1))
    return folder


def write_benchmark(folder: Path, stories: tuple[Story, ...] = STORIES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s in stories:
        (folder / f"{s.video_id}.json").write_text(json.dumps(annotation(s), indent=4))
    return folder


def swapped(stories: tuple[Story, ...] = STORIES) -> tuple[Story, ...]:
    """Each story with the next story's captions: every question asked of the wrong video."""
    n = len(stories)
    return tuple(Story(s.video_id, stories[(i + 1) % n].hints, stories[(i + 1) % n].scenes, s.questions)
                 for i, s in enumerate(stories))
