// What each view shows, decided from the lesson state alone (no DOM here):
// which tiles exist, which one is large (the "stage"), what each tile says and offers.
//
// Tiles come from the subscriber slots the server gave us: one tile per slot group (a classroom
// id, or "floor" for whichever rural classroom has the floor), plus "courseware" for the
// master's shared screen. So the same code serves the master, rural and observer views.
// A tile's tier is the one its video slot says the server sends now (never decided here).

export const COURSEWARE = "courseware";
export const FLOOR = "floor";
export const GUEST = "guest-"; // a broadcast's places for listening classrooms the master brought in

const isGuestKey = (key) => typeof key === "string" && key.startsWith(GUEST);

export function tileKeyOf(slot) {
  return slot.kind === "video" && slot.source === COURSEWARE ? COURSEWARE : slot.group;
}

/** The tier a tile's picture comes in: its video slot's, as the server says ("full" when it does not). */
export function tierOf(videoSlot) {
  return videoSlot?.tier || "full";
}

export function classroomName(lesson, id, names = null) {
  if (!lesson || !id) return id || "";
  if (lesson.master?.id === id) return lesson.master.name || id;
  const rural = (lesson.rurals || []).find((c) => c.id === id);
  return rural ? rural.name || id : names?.get(id) || id; // names: listening classrooms, as they told theirs
}

/** Tiles in display order: master, courseware, rural classrooms in lesson order, floor. */
export function tileKeys(lesson, slots) {
  const keys = new Set();
  for (const slot of slots) keys.add(tileKeyOf(slot));
  const order = [lesson?.master?.id, COURSEWARE, ...(lesson?.rurals || []).map((c) => c.id), FLOOR];
  const rank = (key) => (isGuestKey(key) ? order.length + Number(key.slice(GUEST.length)) : order.indexOf(key));
  return [...keys].sort((a, b) => rank(a) - rank(b));
}

function slotFor(slots, key, kind) {
  return slots.find((s) => tileKeyOf(s) === key && s.kind === kind) || null;
}

/** The classroom whose picture a tile shows now (null: nobody). */
function tileClassroom(key, videoSlot, audioSlot) {
  if (key === COURSEWARE) return videoSlot?.classroom || null;
  if (key === FLOOR || isGuestKey(key)) return videoSlot?.classroom || audioSlot?.classroom || null;
  return key;
}

/**
 * The full picture for rendering:
 * {stage: tile key|null, tiles: [{key, classroom, name, visible, videoSlot, audioSlot,
 *  placeholder: i18n key|null, badges: [i18n keys], actions: [names], quality, tier}]}
 */
export function computeLayout(state) {
  const { you, lesson, slots = [] } = state;
  const role = you?.role;
  const keys = tileKeys(lesson, slots);
  const tiles = keys.map((key) => {
    const videoSlot = slotFor(slots, key, "video");
    const audioSlot = slotFor(slots, key, "audio");
    const classroom = tileClassroom(key, videoSlot, audioSlot);
    const online = classroom !== null && state.online.has(classroom);
    let visible = true;
    if (key === COURSEWARE) visible = Boolean(state.courseware);
    if (key === FLOOR) visible = classroom !== null; // someone else has the floor
    if (isGuestKey(key)) visible = classroom !== null; // a place the master has filled
    let placeholder = null;
    if (state.connection === "reconnecting") placeholder = "tile.reconnecting";
    else if (!online) placeholder = classroom === lesson?.master?.id ? "tile.waiting_master" : "tile.not_connected";
    else if (!videoSlot?.classroom || !state.videoReady.has(videoSlot.key)) placeholder = "tile.waiting";
    const badges = [];
    if (classroom && classroom === state.floor) badges.push("tile.has_floor");
    if (classroom && state.hands.some((h) => h.classroom === classroom)) badges.push("tile.hand");
    const tier = tierOf(videoSlot);
    if (tier !== "full") badges.push("tile.low_tier");
    const actions = [];
    const isRural = classroom && lesson?.rurals?.some((c) => c.id === classroom);
    const isGuest = isGuestKey(key) && classroom !== null;
    if (role === "master" && (isRural || isGuest) && key !== COURSEWARE) {
      if (classroom === state.floor) actions.push("take-floor");
      else if (online) actions.push("give-floor");
      if (online) actions.push("ask-mute");
      if (isGuest) actions.push("send-back");
    }
    let name = classroomName(lesson, classroom, state.names);
    if (key === COURSEWARE) name = null; // labelled "courseware"
    return {
      key, classroom, name, visible, videoSlot, audioSlot, placeholder, badges, actions,
      label: key === COURSEWARE ? "tile.courseware" : key === FLOOR ? "tile.floor" : null,
      quality: classroom ? state.stats.get(classroom) || null : null,
      tier,
    };
  });
  return { stage: stageTile(state, tiles, role), tiles };
}

function stageTile(state, tiles, role) {
  const has = (key) => tiles.some((t) => t.key === key && t.visible);
  if (role === "master") {
    const floorTile = tiles.find((t) => t.classroom && t.classroom === state.floor);
    return floorTile ? floorTile.key : null;
  }
  if (state.courseware && has(COURSEWARE)) return COURSEWARE;
  const master = state.lesson?.master?.id;
  return master && has(master) ? master : null;
}

/** How long a hand has been up, as m:ss. */
export function waited(raisedAt, skewSeconds, nowMs = Date.now()) {
  const seconds = Math.max(0, Math.floor(nowMs / 1000 - skewSeconds - raisedAt));
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return `${m}:${s}`;
}
