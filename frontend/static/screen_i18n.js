// Big screen, words: the zh-CN and English strings, the current language, and the few
// texts the server writes in English that the screen shows in Chinese.

export const STRINGS = {
  "zh-CN": {
    title: "智慧应急指挥调度", screen: "实时态势",
    drillBanner: "演练", newIncident: "新建事件", planAll: "全部规划", queue: "事件队列", overview: "总览", other: "English",
    openIncidents: "未结事件", unitsTotal: "救援力量", activeTasks: "执行中任务",
    unackedTasks: "未确认任务", unitsByStatus: "救援力量状态", feed: "实时动态",
    attribution: "地图数据", libs: "MapLibre GL JS · Apache ECharts",
    login: "登录", username: "用户名", password: "密码", signin: "登录",
    badLogin: "用户名或密码错误",
    lockedOut: "登录失败次数过多，请稍后再试", loginBusy: "服务器繁忙，请稍后再试",
    conn: { idle: "未连接", connecting: "连接中", live: "实时", reconnecting: "重连中", offline: "离线" },
    legend: { incident: "事件", unit: "救援力量", shelter: "避难场所", zone: "预警区域",
      roadsClosed: "道路封闭", staging: "集结点（建议）" },
    status: { reported: "已报告", verified: "已核实", dispatched: "已派遣", on_scene: "到场处置",
      resolved: "已处置", closed: "已关闭", cancelled: "已取消", available: "待命",
      assigned: "已分配", en_route: "途中", returning: "返回中", out_of_service: "停用",
      accepted: "已接受", done: "已完成", acknowledged: "已确认", open: "开放" },
    severity: { minor: "轻微", moderate: "中等", severe: "严重", extreme: "特别严重" },
    ev: { created: "新建", updated: "更新", status_changed: "状态变更", position_reported: "位置上报",
      deleted: "删除", acknowledged: "已确认", flagged: "待核实", ended: "结束",
      started: "开始", stopped: "停止", finished: "结束", clock: "时钟" },
    entity: { incident: "事件", unit: "救援力量", task: "任务", shelter: "避难场所",
      stock: "物资", warning_zone: "预警区域", alert: "预警", drill: "演练" },
    resync: "同步全部态势",
    // retry.js: a write cut off by a dying server, sent again with the same key
    retrying: (n) => `连接中断，正在重试…（第 ${n} 次）`,
    alerts: "预警", reviewList: "待核实事件", noAlerts: "暂无预警", noReview: "暂无待核实事件",
    needsReview: "待核实", noLocation: "无位置", warnings: "警告", noWarnings: "无警告",
    warningsCount: (n) => `${n} 条警告`, blocksRoads: "道路封闭",
    msgType: { Alert: "新发布", Update: "更新", Cancel: "解除", Ack: "确认", Error: "错误" },
    alertVerb: { Alert: "新发布", Update: "更新", Cancel: "解除" },
    alertStatus: { Exercise: "演练", Test: "测试", System: "系统", Draft: "草稿" },
    outcome: { incident_ids: "新建事件", zone_ids: "新建区域", updated_incident_ids: "更新事件",
      updated_zone_ids: "更新区域", cancelled_incident_ids: "取消事件", ended_zone_ids: "结束区域",
      review_incident_ids: "转待核实" },
    proposal: "预置建议", notOrder: "建议，非指令",
    notOrderLong: "仅供参考：不会调派任何力量，是否前置由指挥员决定。",
    staging: "集结点", stagingNote: "区域外、最近的道路上", suggestedUnits: "建议前置力量",
    suggestedShelters: "有空位的避难场所", room: "余位", minutes: (m) => `${m} 分钟`,
    unmet: "缺口", noUnits: "无可用力量", noShelters: "区域外无有空位的避难场所",
    loading: "正在计算建议…", failed: "无法生成建议", computedAt: "计算于", close: "关闭",
    accessible: "无障碍", pets: "可带宠物",
    capability: { water_rescue: "水域救援", rescue: "救援", medical_bls: "基础医疗",
      medical_als: "高级医疗", patient_transport: "病人转运", fire_suppression: "灭火",
      police: "警务", search_rescue: "搜救", supply_transport: "物资运输", ladder: "云梯",
      hazmat: "危化品处置" },
  },
  en: {
    drillBanner: "DRILL", newIncident: "New incident", planAll: "Plan all", queue: "Incident queue",
    title: "Emergency Command & Dispatch", screen: "Live situation", overview: "Overview",
    other: "中文", openIncidents: "Open incidents", unitsTotal: "Units", activeTasks: "Active tasks",
    unackedTasks: "Unacknowledged", unitsByStatus: "Units by status", feed: "Live events",
    attribution: "Map data", libs: "MapLibre GL JS · Apache ECharts",
    login: "Sign in", username: "Username", password: "Password", signin: "Sign in",
    badLogin: "Wrong username or password",
    lockedOut: "Too many failed logins; try again later", loginBusy: "Server busy; try again shortly",
    conn: { idle: "Not connected", connecting: "Connecting", live: "Live",
      reconnecting: "Reconnecting", offline: "Offline" },
    legend: { incident: "Incident", unit: "Unit", shelter: "Shelter", zone: "Warning zone",
      roadsClosed: "Roads closed", staging: "Staging (proposal)" },
    status: { reported: "Reported", verified: "Verified", dispatched: "Dispatched",
      on_scene: "On scene", resolved: "Resolved", closed: "Closed", cancelled: "Cancelled",
      available: "Available", assigned: "Assigned", en_route: "En route",
      returning: "Returning", out_of_service: "Out of service", accepted: "Accepted",
      done: "Done", acknowledged: "Acknowledged", open: "Open" },
    severity: { minor: "Minor", moderate: "Moderate", severe: "Severe", extreme: "Extreme" },
    ev: { created: "created", updated: "updated", status_changed: "status changed",
      position_reported: "position", deleted: "deleted", acknowledged: "acknowledged",
      flagged: "flagged for review", ended: "ended", started: "started", stopped: "stopped",
      finished: "finished", clock: "clock" },
    entity: { incident: "Incident", unit: "Unit", task: "Task", shelter: "Shelter",
      stock: "Stock", warning_zone: "Warning zone", alert: "Alert", drill: "Drill" },
    resync: "Full situation loaded",
    retrying: (n) => `Connection lost, retrying… (attempt ${n})`,
    alerts: "Alerts", reviewList: "Needs review", noAlerts: "No alerts",
    noReview: "Nothing waiting for review", needsReview: "needs review", noLocation: "no location",
    warnings: "Warnings", noWarnings: "No warnings",
    warningsCount: (n) => `${n} warning${n === 1 ? "" : "s"}`, blocksRoads: "Roads closed",
    msgType: { Alert: "Alert", Update: "Update", Cancel: "Cancel", Ack: "Ack", Error: "Error" },
    alertVerb: { Alert: "issued", Update: "updated", Cancel: "cancelled" },
    alertStatus: { Exercise: "Exercise", Test: "Test", System: "System", Draft: "Draft" },
    outcome: { incident_ids: "new incidents", zone_ids: "new zones",
      updated_incident_ids: "incidents updated", updated_zone_ids: "zones updated",
      cancelled_incident_ids: "incidents cancelled", ended_zone_ids: "zones ended",
      review_incident_ids: "flagged for review" },
    proposal: "Pre-positioning proposal", notOrder: "Proposal, not an order",
    notOrderLong: "For information only: nothing is dispatched; the commander decides.",
    staging: "Staging point", stagingNote: "outside the zone, on the nearest road",
    suggestedUnits: "Units to pre-position", suggestedShelters: "Shelters with room",
    room: "room", minutes: (m) => `${m} min`, unmet: "Short of", noUnits: "No units available",
    noShelters: "No shelter with room outside the zone", loading: "Working out a proposal…",
    failed: "No proposal", computedAt: "Computed", close: "Close",
    accessible: "accessible", pets: "pets allowed",
    capability: {},
  },
};

// A live binding: importers always read the current language; only setLang changes it.
export let lang = localStorage.getItem("lang") || "zh-CN";
export function setLang(next) { lang = next; }
export const t = (key) => STRINGS[lang][key];

/** A module's own strings, merged into both languages (its keys must not clash). */
export function addStrings(more) {
  for (const [code, strings] of Object.entries(more)) {
    for (const [key, value] of Object.entries(strings)) {
      const old = STRINGS[code][key];
      STRINGS[code][key] = old && typeof old === "object" && typeof value === "object" ? { ...old, ...value } : value;
    }
  }
}
export const label = (group, key) => (STRINGS[lang][group] || {})[key] || key;
export const locale = () => (lang === "en" ? "en-GB" : "zh-CN");
export const capName = (c) => label("capability", c).replaceAll("_", " ");
export const fmtMinutes = (s) => t("minutes")(Math.max(1, Math.round(s / 60)));
export const fmtWhen = (iso) => new Date(iso).toLocaleString(locale(),
  { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });

// The server writes review reasons and unit choices in English; the known ones in Chinese.
const REASONS_ZH = [
  [/^no usable location in the alert(?: \(geocodes (.*)\))?$/,
    (m) => `预警中没有可用的位置${m[1] ? `（地理编码 ${m[1]}）` : ""}，请人工定位`],
  [/^no longer named by alert (.+)$/, (m) => `预警 ${m[1]} 已不再包含此区域`],
  [/^the alert was cancelled by the sender \((.+)\) while units are assigned: decide whether to stand them down$/,
    (m) => `发布方已解除预警（${m[1]}），但已有力量出动：请决定是否撤回`],
];

export function reasonText(reason) {
  if (!reason || lang === "en") return reason || "";
  for (const [re, zh] of REASONS_ZH) { const m = re.exec(reason); if (m) return zh(m); }
  return reason;
}

export function whyText(why) {
  const m = /^fastest with (\S+) \((\d+) of (\d+)\): (\d+) min (\d+) s(.*)$/.exec(why || "");
  if (!m || lang === "en") return why || "";
  let out = `${capName(m[1])} ${m[2]}/${m[3]}，最快 ${m[4]} 分 ${m[5]} 秒`;
  if (m[6].includes("returning")) out += "，任务返回途中";
  if (m[6].includes("home station")) out += "，按驻地计算（未上报位置）";
  return out;
}
