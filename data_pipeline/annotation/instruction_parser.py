"""Parse a manipulation instruction into ordered steps (verb, object, relation, target).

Why rules and not a model: LIBERO and Bridge instructions are short imperative sentences built
from a handful of verbs ("pick up X and place it on Y", "put both X and Y in the basket", "open the
top drawer and put the bowl inside", "turn on the stove"); a few rules recover the objects, the
targets and the number of grasps the task needs, offline and deterministically. This is the
`instruction` backend's whole semantic anchor and the fallback wording of the other backends.

Spatial qualifiers that only identify an object ("the black bowl between the plate and the
ramekin", "... next to the cookie box") are stripped from the object name but kept in `qualifier`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Verb phrase -> canonical verb. Longest first so "pick up" wins over "pick".
VERBS: dict[str, str] = {
    "pick up": "pick",
    "pick": "pick",
    "grab": "pick",
    "grasp": "pick",
    "lift": "pick",
    "take": "pick",
    "put": "put",
    "place": "put",
    "set": "put",
    "move": "put",
    "stack": "put",
    "drop": "put",
    "open": "open",
    "close": "close",
    "shut": "close",
    "turn on": "turn_on",
    "switch on": "turn_on",
    "turn off": "turn_off",
    "switch off": "turn_off",
    "push": "push",
    "slide": "push",
    "pull": "pull",
    "flip": "flip",
    "wipe": "wipe",
    "fold": "fold",
}
_VERB_ALT = "|".join(re.escape(v) for v in sorted(VERBS, key=len, reverse=True))
# Relations, longest first ("on top of" before "on").
RELATIONS: tuple[str, ...] = (
    "on top of",
    "to the front of",
    "to the back of",
    "to the left of",
    "to the right of",
    "inside of",
    "inside",
    "into",
    "onto",
    "in",
    "on",
    "to",
    "under",
    "at",
    "near",
)
_REL_ALT = "|".join(re.escape(r) for r in RELATIONS)
_QUALIFIERS = (
    "between",
    "next to",
    "from",
    "on",
    "in",
    "at",
    "that is",
    "which is",
    "beside",
    "near",
    "to the left of",
    "to the right of",
    "in front of",
    "behind",
)
_QUAL_ALT = "|".join(re.escape(q) for q in sorted(_QUALIFIERS, key=len, reverse=True))
GRASP_VERBS = frozenset({"pick", "put"})


@dataclass
class Step:
    verb: str  # canonical verb (VERBS values)
    obj: str  # object name, no article ("black bowl")
    relation: str = ""  # "on", "in", "on top of", ... ("" when no target)
    target: str = ""  # target name ("plate"), "" when none
    qualifier: str = ""  # identifying phrase stripped from the object ("between the plate and the ramekin")
    text: str = ""  # the clause as written

    @property
    def needs_grasp(self) -> bool:
        return self.verb in GRASP_VERBS


@dataclass
class ParsedInstruction:
    instruction: str
    steps: list[Step] = field(default_factory=list)

    @property
    def objects(self) -> list[str]:
        """Task-relevant object names in order of mention (objects, then targets), de-duplicated."""
        names: list[str] = []
        for s in self.steps:
            for n in (s.obj, s.target):
                if n and n not in names:
                    names.append(n)
        return names

    @property
    def expected_grasps(self) -> int | None:
        """Grasps the task needs when every step is pick/put; None when any step is not (open, push...)."""
        if not self.steps or not all(s.needs_grasp for s in self.steps):
            return None
        return len(self.steps)


def normalize(text: str) -> str:
    text = text.strip().lower().replace("_", " ")
    text = re.sub(r"[.!?]+$", "", text)
    return re.sub(r"\s+", " ", text)


def strip_article(name: str) -> str:
    return re.sub(r"^(the|a|an|some)\s+", "", name.strip()).strip()


def split_clauses(text: str) -> list[str]:
    """Split at "and"/"then"/"," only where a verb follows ("... and the ramekin" stays whole)."""
    parts = re.split(
        rf"\s*(?:,\s*(?:and\s+|then\s+)?|\s+and\s+then\s+|\s+and\s+|\s+then\s+)(?=(?:{_VERB_ALT})\b)", text
    )
    return [p.strip() for p in parts if p.strip()]


def _split_object(phrase: str) -> tuple[str, str]:
    """'the black bowl between the plate and the ramekin' -> ('black bowl', 'between the plate and ...')."""
    phrase = strip_article(phrase)
    m = re.search(rf"\s+(?:{_QUAL_ALT})\s+", phrase)
    if m:
        return strip_article(phrase[: m.start()]), phrase[m.start() :].strip()
    return phrase, ""


def _parse_clause(clause: str, prev: Step | None) -> list[Step]:
    m = re.match(rf"^({_VERB_ALT})\b\s*(.*)$", clause)
    if not m:
        return [Step(verb="do", obj=strip_article(clause), text=clause)] if clause else []
    verb = VERBS[m.group(1)]
    rest = m.group(2).strip()
    relation, target = "", ""
    if verb in ("pick", "put", "push", "pull"):
        # The relation is the last relation word that is followed by a noun phrase: "put the bowl on
        # the plate", "push the plate to the front of the stove". Object qualifiers come earlier.
        rm = None
        for cand in re.finditer(rf"\s+({_REL_ALT})\s+(?=\S)", rest):
            rm = cand
        if rm and verb != "pick":
            relation = rm.group(1)
            target = strip_article(rest[rm.end() :])
            rest = rest[: rm.start()]
        elif re.search(r"\s+(inside|in it|on it)$", rest):
            im = re.search(r"\s+(inside|in it|on it)$", rest)
            relation, target = ("in" if "in" in im.group(1) else "on"), "it"
            rest = rest[: im.start()]
    rest = rest.strip()
    objs: list[str]
    both = re.match(r"^both\s+(.*)$", rest)
    if both:
        inner = both.group(1)
        pair = re.split(r"\s+and\s+", inner, maxsplit=1)
        objs = [strip_article(p) for p in pair] if len(pair) == 2 and " " in inner else [inner]
        if len(pair) == 1 or objs == [inner]:
            # "both moka pots": two objects of one kind
            single = re.sub(r"s$", "", strip_article(inner))
            objs = [single, single]
    else:
        objs = [rest]
    steps: list[Step] = []
    for raw in objs:
        name, qual = _split_object(raw)
        if name in ("it", "them", ""):
            if prev is None:
                name = ""
            elif verb in ("open", "close", "turn_on", "turn_off") and prev.target:
                name = prev.target
            else:
                name = prev.obj
        if target == "it" and prev is not None:
            target = prev.obj if verb not in ("put",) else (prev.target or prev.obj)
        steps.append(Step(verb=verb, obj=name, relation=relation, target=target, qualifier=qual, text=clause))
    return steps


def parse_instruction(instruction: str) -> ParsedInstruction:
    """Steps of an instruction; a pick clause followed by a put of the same object merge into one step."""
    text = normalize(instruction)
    first = re.search(rf"\b(?:{_VERB_ALT})\b", text)
    if first and first.start() > 0:
        text = text[first.start() :]  # drop a prefix such as a LIBERO scene name ("living room scene2 ...")
    steps: list[Step] = []
    for clause in split_clauses(text):
        new = _parse_clause(clause, steps[-1] if steps else None)
        for st in new:
            if steps and steps[-1].verb == "pick" and st.verb == "put" and st.obj == steps[-1].obj:
                prev = steps.pop()
                st = Step(
                    verb="put",
                    obj=prev.obj,
                    relation=st.relation,
                    target=st.target,
                    qualifier=prev.qualifier,
                    text=f"{prev.text} and {st.text}",
                )
            steps.append(st)
    steps = [s for s in steps if s.obj]
    return ParsedInstruction(instruction=instruction, steps=steps)
