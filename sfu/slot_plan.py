"""Who receives what: the subscriber slots each role of a lesson gets when it subscribes.

A slot is named ``<group>:<source>``: the group is a classroom id, or a place the room fills as
the lesson goes (``floor``: whichever classroom has the floor; ``guest-N``: the N-th listening
classroom the master of a broadcast has brought in). Slots are fixed for a connection (one
transceiver each, no renegotiation); the room points each at the track it should carry now.

- master: every rural classroom's camera and mic (and, in a broadcast, the guest places);
- rural: the master's camera, mic and courseware, and the floor (or every other rural when the
  lesson lets rurals see each other);
- listener (a broadcast's listening classroom): the master's camera, mic and courseware, and the
  floor; brought in, it keeps these slots (the master sees it through a guest place);
- observers and the recorder: everything (the master, the rurals and the guest places).
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.lessons import MAX_RURAL_CLASSROOMS, Lesson, Role

FLOOR = "floor"  # the slot group that shows whichever classroom has the floor
GUEST = "guest-"  # guest-1, guest-2...: the listening classrooms brought in, in the order they came


@dataclass
class SlotSpec:
    key: str  # "<classroom id>:<source>", "floor:<source>" or "guest-N:<source>"
    kind: str  # "audio" | "video"

    @property
    def group(self) -> str:
        return self.key.split(":", 1)[0]

    @property
    def source(self) -> str:
        return self.key.split(":", 1)[1]


def guest_places(lesson: Lesson) -> int:
    """How many listening classrooms a broadcast's master can bring in at once (eight interactive
    classrooms in all, the listed rural ones included)."""
    return MAX_RURAL_CLASSROOMS - len(lesson.rurals) if lesson.broadcast else 0


def guest_index(group: str) -> int | None:
    """0 for "guest-1", ...; None for any other group."""
    if not group.startswith(GUEST):
        return None
    number = group[len(GUEST):]
    return int(number) - 1 if number.isdigit() and int(number) >= 1 else None


def slot_specs(lesson: Lesson, role: Role, classroom: str) -> list[SlotSpec]:
    specs: list[SlotSpec] = []

    def add(group: str, *, courseware: bool = False) -> None:
        specs.append(SlotSpec(f"{group}:camera", "video"))
        specs.append(SlotSpec(f"{group}:mic", "audio"))
        if courseware:
            specs.append(SlotSpec(f"{group}:courseware", "video"))

    guests = [f"{GUEST}{i + 1}" for i in range(guest_places(lesson))]
    if role == Role.MASTER:
        for r in lesson.rurals:
            add(r.id)
        for g in guests:
            add(g)
    elif role in (Role.RURAL, Role.LISTENER):
        add(lesson.master.id, courseware=True)
        if role == Role.RURAL and lesson.rural_see_each_other:
            for r in lesson.rurals:
                if r.id != classroom:
                    add(r.id)
        else:
            add(FLOOR)
    else:  # observers and system participants receive everything
        add(lesson.master.id, courseware=True)
        for r in lesson.rurals:
            add(r.id)
        for g in guests:
            add(g)
    return specs
