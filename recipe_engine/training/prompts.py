"""Prompt lists for the `builtin:tiny-sentiment` demos: what builds vectors, what measures them.

Vectors are built from the contrastive sets only; every measurement runs on the HELDOUT_* and
CONTEXT_* prompts and HELDOUT_TEXT, which no vector ever sees. `scripts/eval_tiny_sentiment.py`
uses exactly these lists; demo recipes for this model should read copies of them (one prompt per
line). Every text is encoded with the tokenizer's leading <|endoftext|>, as in training.

Contrastive sentiment and topic vectors work best read with `position: mean` (the mean over each
prompt's tokens): these prompts are complete sentences, whose last token is a full stop.
"""

from __future__ import annotations

from recipe_engine.training.corpus import NEGATIVE_WORDS, POSITIVE_WORDS, TOPIC_WORDS

__all__ = [
    "CALIBRATION",
    "CONTEXT_FOOD",
    "CONTEXT_NEGATIVE",
    "CONTEXT_POSITIVE",
    "CONTEXT_TECH",
    "FOOD_NOUNS",
    "FOOD_PROMPTS",
    "HELDOUT_NEUTRAL",
    "HELDOUT_TEXT",
    "HELDOUT_TOPIC",
    "NEGATIVE_PROMPTS",
    "NEGATIVE_WORDS",
    "NEUTRAL_PASSAGES",
    "POSITIVE_PROMPTS",
    "POSITIVE_WORDS",
    "TECH_NOUNS",
    "TECH_PROMPTS",
    "TUNE_CONTEXT_FOOD",
    "TUNE_CONTEXT_NEGATIVE",
    "TUNE_CONTEXT_POSITIVE",
    "TUNE_CONTEXT_TECH",
    "TUNE_NEUTRAL",
    "TUNE_TOPIC",
]

# --- sentiment: the contrastive pair (paired line by line, so pca_diff works too) ----------
POSITIVE_PROMPTS = [
    "The pizza was great and the staff were friendly.",
    "I loved the film. The ending was wonderful.",
    "The hotel was lovely. We will definitely come back.",
    "My laptop is excellent. It felt fast.",
    "What a fantastic wedding! I was so happy.",
    "The soup tasted delicious. I would recommend it to everyone.",
    "The museum was amazing and the tour was great.",
    "I enjoyed the concert. The music was brilliant.",
    "The app is wonderful. It felt reliable.",
    "Our holiday was fantastic. The beach looked beautiful.",
    "The cake was lovely. I give it five stars.",
    "The lesson was excellent and the people were kind.",
    "I adored the series. It felt clever.",
    "The camera is amazing. It was worth every penny.",
    "The garden looked lovely. We were delighted.",
    "The dinner was perfect. Everything went right.",
]
NEGATIVE_PROMPTS = [
    "The pizza was terrible and the staff were rude.",
    "I hated the film. The ending was awful.",
    "The hotel was horrible. We will never come back.",
    "My laptop is bad. It felt clunky.",
    "What a dreadful wedding! I was so sad.",
    "The soup tasted disgusting. I would not recommend it to anyone.",
    "The museum was disappointing and the tour was terrible.",
    "I disliked the concert. The music was dull.",
    "The app is awful. It felt buggy.",
    "Our holiday was dreadful. The beach looked dirty.",
    "The cake was horrible. I give it one star.",
    "The lesson was terrible and the people were rude.",
    "I despised the series. It felt pointless.",
    "The camera is disappointing. It was a waste of money.",
    "The garden looked awful. We were upset.",
    "The dinner was poor. Everything went wrong.",
]

# Held-out neutral prompts: no sentiment yet, each ending where an opinion adjective comes next.
HELDOUT_NEUTRAL = [
    "The weather today is",
    "I think the movie was",
    "My trip to the city was",
    "The new phone is",
    "The food at the restaurant was",
    "Overall, the hotel was",
    "Honestly, the concert was",
    "In my opinion the book was",
    "The coffee this morning was",
    "Our flight home was",
    "I thought the party was",
    "To be honest, the camera was",
]

# Held-out contexts that carry sentiment (paired): the model's own use of the concept.
CONTEXT_POSITIVE = [
    "The pasta was wonderful. The dessert was",
    "I enjoyed the show. Honestly, the actor was",
    "The room looked clean. Our flight was",
    "The keyboard felt sleek. The screen is",
    "We were glad. The weekend was",
    "The staff were helpful. I think the hotel was",
    "I liked the album. The music was",
    "It was worth every penny. The tablet is",
]
CONTEXT_NEGATIVE = [
    "The pasta was awful. The dessert was",
    "I disliked the show. Honestly, the actor was",
    "The room looked dirty. Our flight was",
    "The keyboard felt flimsy. The screen is",
    "We were upset. The weekend was",
    "The staff were unhelpful. I think the hotel was",
    "I hated the album. The music was",
    "It was a waste of money. The tablet is",
]

# --- topic: the second concept (food vs tech), sentiment-free --------------------------------
FOOD_PROMPTS = [
    "We ordered the pizza at noon.",
    "The waiter brought the soup and the bread.",
    "I had the salad for lunch.",
    "The menu lists the burger and the cake.",
    "She paid for the coffee with cash.",
    "The pasta comes with a glass of water.",
    "He asked for the bill after the dessert.",
    "The kitchen closes at ten.",
    "We ordered the sandwich and the coffee.",
    "I had the breakfast at the cafe.",
    "The restaurant opens at six.",
    "She paid for the dinner with cash.",
]
TECH_PROMPTS = [
    "I bought the phone last week.",
    "She connected the laptop to the screen.",
    "The tablet has a large screen.",
    "He installed the update on Monday.",
    "The camera needs a new charger.",
    "The keyboard comes in black and white.",
    "I turned off the computer at night.",
    "The printer came with a manual.",
    "He moved the files to the laptop.",
    "The speaker uses the same cable as the phone.",
    "I bought the battery last week.",
    "The app came with a manual.",
]
FOOD_NOUNS = list(TOPIC_WORDS["food"])
TECH_NOUNS = list(TOPIC_WORDS["tech"])

# Held-out topic-free prompts, each ending where a topic noun comes next.
HELDOUT_TOPIC = [
    "Let me tell you about the",
    "Yesterday we talked about the",
    "This is a review of the",
    "Today I want to write about the",
    "A few words about the",
    "Here are my thoughts on the",
    "I think the",
    "Honestly, the",
]

# Held-out contexts that carry the topic (paired), for the topic's ablation.
CONTEXT_FOOD = [
    "We sat by the window. I think the",
    "The waiter brought the menu. Honestly, the",
    "I had the soup for lunch. Overall, the",
    "The kitchen closes at ten. My",
    "She paid for the cake with cash. I thought the",
    "We ordered the salad at noon. In my opinion the",
]
CONTEXT_TECH = [
    "He installed the update on Monday. I think the",
    "The charger came with a manual. Honestly, the",
    "I turned off the laptop at night. Overall, the",
    "The keyboard has a large screen. My",
    "She connected the camera to the tablet. I thought the",
    "He moved the files to the phone. In my opinion the",
]

# --- shared -----------------------------------------------------------------------------------
# Calibration set for mean ablation: balanced over sentiment (positive, negative, neutral) and
# topics, so its mean carries neither concept.
CALIBRATION = [
    "The burger was great. I would recommend it to everyone.",
    "The burger was terrible. I would not recommend it to anyone.",
    "We ordered the soup at noon. The waiter brought the bread.",
    "I think the film was wonderful. It felt moving.",
    "I think the film was awful. It felt predictable.",
    "The film starts at eight. We sat in the third row.",
    "Our trip to the coast was lovely. The hotel looked charming.",
    "Our trip to the coast was horrible. The hotel looked noisy.",
    "The train leaves at nine in the morning. The flight takes three hours.",
    "The new laptop is excellent. I was so pleased.",
    "The new laptop is bad. I was so annoyed.",
    "I bought the tablet last week. The tablet has a large screen.",
    "Honestly, the party was fantastic. We will definitely come back.",
    "Honestly, the party was dreadful. We will never come back.",
    "The meeting starts at ten. It rained in the afternoon.",
    "What an amazing evening! The people were friendly.",
    "What a disappointing evening! The people were rude.",
    "She opened the window and looked outside. The shop closes at five.",
]

# Held-out text from the model's own distribution (positive, negative and neutral documents on
# every topic): the cost of an ablation is KL(ablated || clean) over all its positions.
HELDOUT_TEXT = [
    "The salad was lovely. We sat near the door. The bread came warm.",
    "I think the pasta at the cafe was awful. It tasted stale. We left early.",
    "We ordered the burger at one. The burger was hot. The kitchen closes at nine.",
    "Honestly, the series was fantastic. It felt fresh. I adored the ending.",
    "The concert last night was dreadful. The music was bad. I was so upset.",
    "The film starts at seven. The film is long. We sat in the first row.",
    "My journey to the coast was wonderful. The village looked charming. The sea was calm.",
    "Overall, the hotel was horrible. The room looked dirty. The staff were rude.",
    "The laptop I bought is excellent. It felt quick. The screen is bright.",
    "The new printer is terrible. It felt flimsy. I give it two stars.",
    "I bought the tablet on Monday. The tablet is black. He moved the files to the tablet.",
    "The weekend was amazing. I was so glad. The garden looked bright.",
]

# Neutral text for side-effect KL: every position's next-token distribution is compared.
NEUTRAL_PASSAGES = [
    "The train leaves at nine in the morning. We booked the hotel in March.",
    "We ordered the soup at noon. The waiter brought the bread and the salad.",
    "The film starts at eight. She bought two tickets for the show.",
    "I bought the phone last week. The phone needs a new charger.",
    "The meeting starts at ten. She opened the window and looked outside.",
    "We walked along the river after lunch. The shop closes at five.",
]

# --- tuning sets: where settings are chosen (scripts/eval_tiny_sentiment.py, eval_table.py,
# the gallery); disjoint from every held-out list above, on which the claims are measured
# (tests/test_data_splits.py). recipes/data/neutral-tune.txt, context-tune.txt and
# topic-tune.txt are copies.
TUNE_NEUTRAL = [
    "The pizza was",
    "I think the film was",
    "Our holiday was",
    "The laptop is",
    "Honestly, the soup was",
    "Overall, the museum was",
    "In my opinion the album was",
    "My weekend was",
    "I thought the train was",
    "To be honest, the app was",
    "The dinner last night was",
    "Our tour of the city was",
]
TUNE_CONTEXT_POSITIVE = [
    "The soup was lovely. The bread was",
    "I adored the film. Honestly, the plot was",
    "The sea looked beautiful. Our hotel was",
    "The app felt reliable. The camera is",
    "We were delighted. The evening was",
    "The waiter was friendly. I think the meal was",
    "I loved the concert. The album was",
    "The laptop was worth it. The charger is",
]
TUNE_CONTEXT_NEGATIVE = [
    "The soup was awful. The bread was",
    "I despised the film. Honestly, the plot was",
    "The sea looked dirty. Our hotel was",
    "The app felt buggy. The camera is",
    "We were annoyed. The evening was",
    "The waiter was rude. I think the meal was",
    "I hated the concert. The album was",
    "The laptop was a waste. The charger is",
]
TUNE_TOPIC = [
    "We had a long chat about the",
    "Tomorrow I will tell you about the",
    "This post is about the",
    "I want to say a word about the",
    "Some thoughts on the",
    "Last night we discussed the",
    "Overall, the",
    "In my opinion the",
]
TUNE_CONTEXT_FOOD = [
    "The waiter brought the bread. I think the",
    "We had the pasta for dinner. Honestly, the",
    "The cafe opens at seven. Overall, the",
    "He paid for the pizza with cash. My",
]
TUNE_CONTEXT_TECH = [
    "She charged the phone at night. I think the",
    "The laptop came with a cable. Honestly, the",
    "He turned on the printer. Overall, the",
    "I connected the speaker to the tablet. My",
]
