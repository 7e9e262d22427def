"""The fixed cast of the demo company: regions and their geography, products, channels, word lists."""

from __future__ import annotations

from dataclasses import dataclass

from crmlens.truths import CAMPAIGN_CHANNELS, COMPETITORS, ORGANIC_CHANNEL, PRODUCT_LINES, REGION_IDS


@dataclass(frozen=True)
class Region:
    """A sales region, its share of the business and the places its accounts are in."""

    region_id: str
    name: str
    country: str
    weight: float
    places: tuple[tuple[str, str, str], ...]  # (country, province, city)


REGIONS: tuple[Region, ...] = (
    Region("East", "East China", "China", 1.25, (
        ("China", "Shanghai", "Shanghai"), ("China", "Jiangsu", "Nanjing"), ("China", "Jiangsu", "Suzhou"),
        ("China", "Jiangsu", "Wuxi"), ("China", "Zhejiang", "Hangzhou"), ("China", "Zhejiang", "Ningbo"),
        ("China", "Anhui", "Hefei"), ("China", "Shandong", "Jinan"), ("China", "Shandong", "Qingdao"),
    )),
    Region("West", "West China", "China", 0.85, (
        ("China", "Sichuan", "Chengdu"), ("China", "Sichuan", "Mianyang"), ("China", "Chongqing", "Chongqing"),
        ("China", "Shaanxi", "Xi'an"), ("China", "Yunnan", "Kunming"), ("China", "Guizhou", "Guiyang"),
    )),
    Region("North", "North China", "China", 1.05, (
        ("China", "Beijing", "Beijing"), ("China", "Tianjin", "Tianjin"), ("China", "Hebei", "Shijiazhuang"),
        ("China", "Hebei", "Tangshan"), ("China", "Shanxi", "Taiyuan"), ("China", "Liaoning", "Shenyang"),
        ("China", "Liaoning", "Dalian"),
    )),
    Region("South", "South China", "China", 1.10, (
        ("China", "Guangdong", "Guangzhou"), ("China", "Guangdong", "Shenzhen"),
        ("China", "Guangdong", "Dongguan"), ("China", "Guangdong", "Foshan"), ("China", "Fujian", "Fuzhou"),
        ("China", "Fujian", "Xiamen"), ("China", "Guangxi", "Nanning"), ("China", "Hainan", "Haikou"),
    )),
    Region("Central", "Central China", "China", 0.90, (
        ("China", "Hubei", "Wuhan"), ("China", "Hubei", "Yichang"), ("China", "Hunan", "Changsha"),
        ("China", "Henan", "Zhengzhou"), ("China", "Henan", "Luoyang"), ("China", "Jiangxi", "Nanchang"),
    )),
    Region("APAC", "Asia Pacific", "Singapore", 0.85, (
        ("Singapore", "Singapore", "Singapore"), ("Malaysia", "Kuala Lumpur", "Kuala Lumpur"),
        ("Malaysia", "Penang", "George Town"), ("Japan", "Tokyo", "Tokyo"), ("Japan", "Osaka", "Osaka"),
        ("Australia", "New South Wales", "Sydney"), ("Australia", "Victoria", "Melbourne"),
        ("South Korea", "Seoul", "Seoul"),
    )),
)
assert tuple(r.region_id for r in REGIONS) == REGION_IDS


@dataclass(frozen=True)
class Product:
    """One product of the catalogue."""

    name: str
    line: str
    category: str
    list_price: float
    cost_ratio: float


_LINE_CATEGORY = {"Core": "platform", "Cloud": "saas", "Insight": "analytics", "Edge": "hardware"}
_LINE_PRICES = {
    "Core": (8_000.0, 20_000.0, 55_000.0),
    "Cloud": (6_000.0, 15_000.0, 40_000.0),
    "Insight": (9_000.0, 24_000.0, 60_000.0),
    "Edge": (2_500.0, 6_000.0, 14_000.0),
}
#: Unit cost as a share of the list price; Cloud's is high: a large line with the thinnest margin (THIN_MARGIN).
_LINE_COST = {"Core": 0.18, "Cloud": 0.64, "Insight": 0.22, "Edge": 0.55}
TIERS = ("Standard", "Professional", "Enterprise")

#: Products ordered by line (as PRODUCT_LINES) then tier; product index = line index * 3 + tier.
PRODUCTS: tuple[Product, ...] = tuple(
    Product(f"{line} {tier}", line, _LINE_CATEGORY[line], _LINE_PRICES[line][t], _LINE_COST[line])
    for line in PRODUCT_LINES
    for t, tier in enumerate(TIERS)
)
#: Share of new business per product line (as PRODUCT_LINES).
LINE_WEIGHTS = (0.35, 0.30, 0.20, 0.15)

#: Lead channels: the campaign channels, then the organic channel (no campaign).
LEAD_CHANNELS = (*CAMPAIGN_CHANNELS, ORGANIC_CHANNEL)
#: Campaign channels whose campaigns are global (no region).
GLOBAL_CHANNELS = ("content", "social")
#: Account source channels: lead channels plus rep-sourced business.
ACCOUNT_CHANNELS = (*LEAD_CHANNELS, "outbound")

#: Lead channel mix (as LEAD_CHANNELS) of leads that became won deals, of other converted leads, and of
#: leads that did not convert.
CHANNEL_MIX_WON = (0.28, 0.05, 0.14, 0.10, 0.10, 0.09, 0.06, 0.10, 0.08)
CHANNEL_MIX_CONVERTED = (0.12, 0.12, 0.14, 0.12, 0.09, 0.10, 0.08, 0.10, 0.13)
CHANNEL_MIX_OTHER = (0.05, 0.12, 0.13, 0.17, 0.10, 0.12, 0.13, 0.05, 0.13)

#: Campaign event types per channel (the engagement a lead shows before it is created).
CHANNEL_EVENTS: dict[str, tuple[str, ...]] = {
    "referral": ("visit",),
    "trade_show": ("register", "attend", "visit"),
    "webinar": ("register", "attend"),
    "paid_search": ("impression", "click", "visit"),
    "email": ("open", "click"),
    "content": ("visit", "download"),
    "social": ("impression", "click"),
    "partner": ("register", "visit"),
}

assert set(COMPETITORS) == {"Apex", "Nimbus", "Vertex", "Orion"}
#: How often each competitor shows up on a contested deal outside its stronghold (as COMPETITORS).
COMPETITOR_WEIGHTS = (0.28, 0.30, 0.26, 0.16)

LOSS_REASONS = ("price", "competitor", "no_decision", "features", "timing", "budget")
INDUSTRIES = ("Manufacturing", "Retail", "Financial Services", "Healthcare", "Logistics", "Energy",
              "Education", "Technology", "Public Sector", "Telecom")
CONTACT_ROLES = ("decision_maker", "champion", "influencer", "user", "procurement", "finance")
TICKET_CATEGORIES = ("question", "defect", "request", "billing", "complaint")
SURVEY_DRIVERS = ("product_quality", "support", "price", "onboarding", "relationship", "features")

NAME_HEADS = ("Golden", "Jade", "Harbor", "Summit", "Blue River", "Northstar", "Evergreen", "Silver Bay",
              "Red Lantern", "Pacific", "Great Wall", "Lotus", "Crimson", "Bright Path", "Oriental",
              "Phoenix", "Pearl", "Sunrise", "Granite", "Cedar", "Orchid", "Dragon Gate", "Skyline",
              "Maple", "Iron Bridge", "Clearwater", "Kunlun", "Yangtze", "Horizon", "Meridian")
NAME_STEMS = ("Tech", "Logistics", "Foods", "Pharma", "Machinery", "Textiles", "Energy", "Capital",
              "Electronics", "Materials", "Retail", "Health", "Motors", "Chemicals", "Systems", "Media",
              "Instruments", "Packaging", "Robotics", "Agritech")
NAME_TAILS = ("Co., Ltd.", "Group", "Holdings", "Industries", "Corp.", "Trading", "Partners", "Pte. Ltd.")

GIVEN_NAMES = ("Wei", "Fang", "Lei", "Jing", "Min", "Tao", "Yan", "Hui", "Jun", "Xin", "Hao", "Li",
               "Ming", "Ying", "Chen", "Bo", "Qiang", "Mei", "Anna", "David", "Grace", "Kenji", "Priya",
               "Daniel", "Sarah", "Hiro", "Mei Ling", "Arjun", "Chloe", "Ethan")
FAMILY_NAMES = ("Zhang", "Wang", "Li", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
                "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Tan", "Lim", "Tanaka", "Kim", "Park", "Wong")

INTEL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "launch": ("launches a new {line} offering", "ships a major {line} release", "announces a {line} bundle"),
    "price": ("cuts {line} list prices by {pct}%", "offers {pct}% discounts on {line} renewals",
              "introduces a low-cost {line} edition"),
    "campaign": ("runs an aggressive {line} campaign", "sponsors a regional {line} roadshow",
                 "targets our {line} customers with switching offers"),
    "press": ("announces a strategic partnership", "reports strong quarterly growth",
              "wins a flagship {line} reference customer"),
}
