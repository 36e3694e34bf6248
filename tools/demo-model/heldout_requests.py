"""The held-out chat requests the demo model is judged on (tests/server/test_demo_model.py, and
train_model.py's check right after training): phrasings that make_conversations.py never
trains on, over the same tools, cities and kinds of request. Seeded.

weather_requests(n, seed): requests that need the weather tool (the city is in the text).
no_tool_requests(n, seed): requests that no listed tool serves (the weather tool is listed).
"""
import random

from make_conversations import CITIES, COUNTRIES, WORDS

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string", "description": "The city name, e.g. Paris"}},
                   "required": ["city"]}}}

HELDOUT_WEATHER = [
    "Could you tell me the weather in {city}?",
    "What's the weather currently like in {city}?",
    "Is it cold in {city} today?",
    "Please check the weather for {city}.",
    "How is the weather in {city} right now?",
    "Give me the current weather in {city}.",
    "Weather for {city}?",
    "I'm flying to {city} tonight. What's the weather there?",
]
HELDOUT_NO_TOOL = [
    "Tell me the capital city of {country}.",
    "How many letters does the word '{word}' have?",
    "What is {a} plus {b}?",
    "Hello! How are you today?",
    "Can you explain what humidity means?",
    "What do you call the capital of {country}?",
    "Please add {a} and {b}.",
    "Write the word '{word}' in capital letters.",
]


def weather_requests(n=20, seed=77):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        city = rng.choice(CITIES)
        out.append({"text": HELDOUT_WEATHER[i % len(HELDOUT_WEATHER)].format(city=city),
                    "city": city})
    return out


def no_tool_requests(n=20, seed=78):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        template = HELDOUT_NO_TOOL[i % len(HELDOUT_NO_TOOL)]
        out.append({"text": template.format(country=rng.choice(list(COUNTRIES)),
                                            word=rng.choice(WORDS), a=rng.randint(1, 60),
                                            b=rng.randint(1, 60))})
    return out
