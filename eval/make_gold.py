#!/usr/bin/env python3
"""Build eval/gold.jsonl: the project's hand-written gold Q&A set.

Stdlib only.  Run from anywhere:  python3 eval/make_gold.py

Every answerable item names a file (short name in corpus/) and a verbatim quote.
Offsets are computed here, never typed by hand:
  start/end   Unicode code-point offsets into open(path,'rb').read().decode('utf-8'),
              end exclusive, so text[start:end] == quote
  line_start  text.count('\n', 0, start) + 1
  line_end    text.count('\n', 0, end - 1) + 1   (line of the quote's last character)
A quote that is missing, or found more than once without an explicit `occ`
(0-based occurrence index), aborts the build.

Unanswerable items carry `absent`: strings (case-insensitive) whose absence from
the whole corpus is checked here, as a guard that the corpus really does not
answer them.  `style` is bookkeeping for the summary only (not written out):
  para   paraphrased question sharing few words with the evidence
  entity exact-name / entity question
  num    number / date / percentage question
  multi  evidence spans two sentences or straddles a paragraph boundary
  unans  on-topic but not answered by the corpus
  off    off-topic
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(ROOT, "corpus")
OUT = os.path.join(HERE, "gold.jsonl")
DEV = "/work/shared/gold/dev.jsonl"

BIG = "intelligent-silk-road-cmri-2025-07.txt"
AI = "sco-ai-cooperation-2025-09-01.txt"
DC = "sco-digital-cooperation-2025-08-29.txt"
CG = "sco-digital-transformation-cgtn.txt"
D22 = "sco-digitalisation-2022-09-30.txt"

ITEMS = []


def A(style, question, answer, file, quote, occ=None):
    """Answerable item with one evidence span."""
    ITEMS.append(dict(style=style, question=question, answerable=True,
                      answer=answer, ev=[(file, quote, occ)]))


def U(style, question, absent=()):
    """Unanswerable item; `absent` strings must not occur in the corpus."""
    ITEMS.append(dict(style=style, question=question, answerable=False,
                      answer=None, ev=[], absent=list(absent)))


# ---------------------------------------------------------------------------
# intelligent-silk-road-cmri-2025-07.txt  (CMRI report, ~39k chars)
# ---------------------------------------------------------------------------
A("entity", "Which organisation wrote the report 'Intelligent Silk Road Toward a Digital Future'?",
  "China Mobile Research Institute (CMTT/CMRI)", BIG,
  "Written by the China Mobile Research Institute (CMTT), this report aims to delve into the value of AI in empowering the Digital Silk Road")
A("para", "What obstacles does the foreword say make building AI hard for Belt and Road nations?",
  "high technological requirements and heavy capital investment", BIG,
  "Developing AI in these countries faces challenges such as high technological requirements and heavy capital investment.")
A("para", "On the production side, which new sectors has artificial intelligence given birth to, according to the CMRI report?",
  "AI hardware, autonomous driving, low-altitude economy and AI digital human", BIG,
  "Second, on the supply side, AI has spawned associated industries such as AI hardware, autonomous driving, low-altitude economy and AI digital human")
A("para", "Which of the foundational AI capabilities is responsible for gathering data and moving it from place to place?",
  "network infrastructure", BIG,
  "network infrastructure collect and transmit data")
A("multi", "Why do most Belt and Road countries find it hard to push AI forward on their own?",
  "they are mostly developing, culturally diverse, economically distant from developed countries and weak in technology and talent", BIG,
  "Belt and Road\n\ncountries are mostly developing countries, which are culturally diverse, economically distant from developed countries, and weak in terms of technology and talent reserve. Hence, most of them find it difficult to efficiently promote the development of AI alone")
A("num", "What proportion of Uzbekistan's GDP comes from agricultural output?",
  "25%-30%", BIG,
  "In Uzbekistan, for example, agricultural output accounts for 25%-30% of the country's GDP")
A("para", "Which livelihood does the CMRI report single out as a major earner for Central Asia?",
  "animal husbandry", BIG,
  "Food production in South America, fruit planting in Southeast Asia, and animal husbandry in Central Asia have all become important sources of income in these regions.")
A("multi", "By what means does AI lift efficiency in the industrial sector of Belt and Road countries?",
  "optimized production processes, automated operation and maintenance, and reduced manpower and energy consumption", BIG,
  "driving efficiency improvement and value recreation in\n\nthe industrial sector through optimized production processes, automated operation and maintenance, and reduced manpower and energy consumption.")
A("num", "By how much did Foxconn Industrial Internet's lighthouse factory in Vietnam raise labor productivity?",
  "190%", BIG,
  "Foxconn Industrial Internet's (Fii) lighthouse factory in Vietnam improved labor productivity by 190%")
A("para", "What is the name of the Chinese platform that pairs technology buyers and sellers worldwide using algorithms?",
  "InnoMatch", BIG,
  "InnoMatch, a global technology supply and demand matching platform in China")
A("num", "What was the market size of intelligent robots in China in 2024, and how fast did it grow?",
  "193 billion yuan, up 22.5% year-on-year", BIG,
  "bringing the market size of intelligent robots in China to 193 billion yuan, up 22.5% year-on-year")
A("num", "How large is China's low-altitude economy expected to be in 2026?",
  "over 1 trillion yuan", BIG,
  "the low-altitude economy industry is developing rapidly, with an expected market size of over 1 trillion yuan in 2026")
A("num", "What value is China's virtual human market expected to reach in 2025?",
  "48.06 billion yuan", BIG,
  "China's virtual human market is expected to reach 48.06 billion yuan in 2025")
A("para", "Among South Asian young people who are not in school, what fraction have never had any schooling or training at all?",
  "nearly 33.3%", BIG,
  "nearly 33.3% have not received any form of education or training")
A("entity", "Which school in Nepal lets its students join classrooms abroad through smart classrooms?",
  "LRI School", BIG,
  "students at Nepal's LRI School can access classrooms in other parts of the world through smart classrooms")
A("num", "According to the Lancet estimate cited, how does doctor density in eastern Sub-Saharan Africa compare with the minimum threshold?",
  "2.5 doctors per 10,000 people vs a minimum of 20.7", BIG,
  "the minimum threshold for doctor density is 20.7 doctors per 10,000 people, but in eastern Sub-Saharan Africa, the figure is 2.5 doctors per 10,000 people")
A("para", "How long does a Pakistani patient wait for a remote verdict from Chinese specialists on an early cancer screening?",
  "within 5 minutes", BIG,
  "with valid and reliable diagnosis results generated within 5 minutes to provide timely early cancer warning")
A("multi", "How much leased data-centre capacity is Singapore expected to have by 2028?",
  "825 MW", BIG,
  "including more than 70 cloud computing, enterprise and shared data centers. By 2028, the country's rental data center capacity is expected to reach 825 MW.")
A("num", "How much computing power will the planned China-Central Asia computing community pool together?",
  "2000P", BIG,
  "an intelligent computing platform that will integrate 2000P of computing power resources within the region")
A("para", "Which environmental undertaking is the planned Sino-Central Asian intelligent computing platform meant to support?",
  "digital simulation of the ecological restoration of the Aral Sea", BIG,
  "to support the joint project of digital simulation of ecological restoration of the Aral Sea")
A("multi", "Which undersea cable loops around the whole African continent and is called the world's largest transoceanic project?",
  "2Africa", BIG,
  "2Africa submarine cable project. Encircling the entire African continent and connecting data traffic hubs in the Middle East, Asia and Europe, the cable is the world's largest transoceanic project to date.")
A("para", "Have Belt and Road countries finished rolling out fourth-generation mobile networks?",
  "yes, they have basically achieved full 4G coverage and are now stepping up 5G", BIG,
  "Belt and Road countries have basically achieved full 4G coverage, and are now stepping up 5G development.")
A("multi", "In which regions have some Belt and Road countries achieved initial successes in AI model technology?",
  "Southeast Asia, West Asia and South Asia", BIG,
  "with some countries in Southeast Asia, West\n\nAsia and South Asia having achieved initial successes")
A("para", "Why would a developing nation build on freely available foundation models rather than train its own from scratch?",
  "developing basic large AI models alone is costly and technically difficult", BIG,
  "It is costly and technically difficult for a country to develop basic large AI models on its own.")
A("entity", "Which Chinese model and chip technologies has Malaysia introduced to build its national AI ecosystem?",
  "DeepSeek LLMs and Huawei Ascend chips", BIG,
  "Malaysia has recently launched the introduction of DeepSeek large language models (LLMs) and Huawei Ascend chips")
A("para", "How is Kyrgyzstan building artificial intelligence that works in the Kyrgyz language?",
  "using LLMs open-sourced by Chinese enterprises", BIG,
  "Kyrgyzstan is developing AI systems in its native language using LLMs open-sourced by Chinese enterprises")
A("multi", "What urban technologies did researchers at the joint lab set up by China and Pakistan in 2022 work on?",
  "smart city technologies such as efficient traffic management systems and infrastructure monitoring systems", BIG,
  "established the \"China-Pakistan Intelligent Systems Lab\" in 2022. Researchers from both sides conducted joint research on smart city technologies such as efficient traffic management systems and infrastructure monitoring systems")
A("para", "Which two partners did Singapore team up with on non-invasive neural interface devices?",
  "the United Arab Emirates and Malaysia", BIG,
  "Singapore cooperated with the United Arab Emirates (UAE) and Malaysia on cutting-edge technologies in the field of AI brain-computer interface devices")
A("entity", "Which three languages were added to the WanJuan Silu multilingual corpus in its March update?",
  "Serbian, Hungarian and Czech", BIG,
  "The corpus was updated in March with three more languages, namely Serbian, Hungarian and Czech")
A("entity", "Which Belt and Road country is the only one to have built 10,000-card intelligent computing clusters?",
  "China", BIG,
  "Among these countries, only China has built 10,000-card intelligent computing clusters")
A("num", "How many 5G and 4G connections did Latin America have by the third quarter of 2024?",
  "67 million 5G; 592 million 4G", BIG,
  "by the third quarter of 2024, the number of 5G connections in Latin America was 67 million, while that of 4G connections reached 592 million")
A("para", "How much do some Central and Southeast Asian countries spend on research relative to the size of their economies, compared with the OECD?",
  "below 0.2% of GDP vs an OECD average of 2.7%", BIG,
  "R&D intensity remains below 0.2%²⁷ of GDP—drastically lower than the OECD average of 2.7%")
A("entity", "Which country accounts for more than half of the AI 2000 awardees and nominees?",
  "the United States", BIG,
  "The United States accounts for the largest number of AI 2000 awardees and nominees, representing over half of the total.")
A("para", "What gap is holding back AI-powered teaching tools in South Asia?",
  "a lack of educational resource repositories annotated in local languages such as Bengali and Tamil", BIG,
  "South Asian countries are still lacking educational resource repositories annotated in local languages (such as Bengali and Tamil)")
A("para", "What kind of shared research facilities does the CMRI initiative propose Belt and Road countries set up together?",
  "AI joint laboratories and regional R&D centers", BIG,
  "The countries along the Belt and Road will jointly build AI joint laboratories and regional research and development centers")
A("para", "How does the report propose speeding up domestic fibre and 5G rollout in Belt and Road countries?",
  "let qualified enterprises from other Belt and Road countries operate networks or take stakes in local operators", BIG,
  "by supporting qualified enterprises from other \"Belt and Road\" countries to independently operate networks in their own countries or take stakes in local operators")
A("entity", "What mechanism does the report recommend for handling conflicts over cross-border data flow?",
  "a dispute resolution mechanism", BIG,
  "Establish a dispute resolution mechanism for cross-border data flow")
A("para", "In which sectors should the harmonised AI application standards concentrate, according to the CMRI initiative?",
  "smart agriculture, smart cities, smart healthcare and smart education", BIG,
  "Focusing on the application of artificial intelligence in areas such as smart agriculture, smart cities, smart healthcare, and smart education")
A("entity", "What is the name of the AI innovation zone established by CMRI?",
  "Jiutian AI Innovation Zone", BIG,
  "It has established the Jiutian AI Innovation Zone, launching foundational and industry-specific large AI models")
A("num", "When did China Mobile set up CMRI as a think tank built around its Research Institute?",
  "March 2023", BIG,
  "In March 2023, China Mobile established the CMRI with its Research Institute as the core entity")

# ---------------------------------------------------------------------------
# sco-ai-cooperation-2025-09-01.txt
# ---------------------------------------------------------------------------
A("num", "Where and on what date did the 2025 SCO Digital Economy Forum take place?",
  "Tianjin, July 11", AI,
  "during the 2025 SCO Digital Economy Forum in Tianjin on July 11")
A("para", "What have SCO members put in place to guide joint work on artificial intelligence, according to the organisation's deputy chief?",
  "a plan for cooperation on AI development", AI,
  "member states have adopted a plan for cooperation on AI development, said SCO Deputy Secretary-General Oleg Kopylov")
A("entity", "Which Chinese government body does Huang Ru work for?",
  "the National Development and Reform Commission", AI,
  "said Huang Ru, an official with the National Development and Reform Commission")
A("para", "What steering technique lets Nongxin's farm machines follow curved routes and turn around on their own?",
  "an adaptive path-tracking algorithm", AI,
  "The system employs an adaptive path-tracking algorithm and can navigate in straight lines as well as curved, circular and automatic U-turn modes")
A("num", "How many agricultural machinery automatic navigation systems has Nongxin Technology sold to Russia?",
  "dozens of sets", AI,
  "have already sold dozens of sets of agricultural machinery automatic navigation systems to Russia")
A("multi", "Which company makes the app-controlled pool-cleaning robot that is popular in Kazakhstan?",
  "Deepinfar Ocean Technology", AI,
  "methodically clean every part of the pool.\n\n\"Users can monitor both the route and the process even when they are away,\" noted Yu Guoxing, a manager at Deepinfar Ocean Technology.")
A("num", "How many pool-cleaning robots did a Kazakh distributor order in one go?",
  "40 units", AI,
  "a Kazakh distributor has placed a single order for 40 units")
A("entity", "At which business school is Teng Bingsheng an associate dean?",
  "Cheung Kong Graduate School of Business", AI,
  "Teng Bingsheng, professor of strategic management and associate dean for strategic research at Cheung Kong Graduate School of Business")
A("para", "What could the SCO bring to worldwide rule-making on artificial intelligence, according to the business-school professor?",
  "an \"SCO approach\" to global AI governance", AI,
  "contributes an \"SCO approach\" to global AI governance")
A("entity", "What post does Azat Ibraimov hold in Kyrgyzstan?",
  "director for management and monitoring of the implementation of decisions of the Presidential Administration", AI,
  "Azat Ibraimov, director for management and monitoring of the implementation of decisions of the Presidential Administration of Kyrgyzstan")
A("para", "What does the Kyrgyz government hope to achieve by learning from Chinese AI experience?",
  "develop AI suited to its national conditions and narrow the gap with more advanced nations", AI,
  "Kyrgyzstan aims to develop AI technologies suited to its own national conditions and gradually narrow the gap with more technologically advanced nations")
A("num", "Which years has Tajikistan designated the Years of Digital Economy and Innovation Development?",
  "2025-30", AI,
  "has designated 2025-30 the Years of Digital Economy and Innovation Development")
A("entity", "Who chairs the AI Council under Tajikistan's Ministry of Industry and New Technologies?",
  "Azizjon Azimi", AI,
  "Azizjon Azimi, chairman of the AI Council under Tajikistan's Ministry of Industry and New Technologies")

# ---------------------------------------------------------------------------
# sco-digital-cooperation-2025-08-29.txt
# ---------------------------------------------------------------------------
A("para", "Under the banner of the Digital Silk Road, in which fields has SCO collaboration sped up?",
  "5G networks, digital payments, cross-border e-commerce and AI applications", DC,
  "Anchored by the Digital Silk Road, the SCO has accelerated collaboration across 5G networks, digital payments, cross-border e-commerce and AI applications.")
A("num", "How many people had the Karamay hub of the China-SCO Big Data Cooperation Center trained by June 2025?",
  "more than 300", DC,
  "the center's regional hub in Karamay, northwest China's Xinjiang Uygur Autonomous Region, had trained more than 300 participants")
A("entity", "Who is Uzbekistan's Minister of Digital Technologies?",
  "Sherzod Shermatov", DC,
  "Uzbekistan's Minister of Digital Technologies Sherzod Shermatov")
A("para", "What kinds of urban projects did the Uzbek digital minister say Chinese practice could help his country with?",
  "safe city, smart city and AI city projects", DC,
  "noting their value for advancing \"safe city, smart city and AI city\" projects in his country")
A("entity", "Which company set up the Soho Cloud e-commerce platform, and where is it based?",
  "Jiangsu Soho E-Commerce Co., Nanjing", DC,
  "the Silk Road e-commerce platform Soho Cloud, established by Jiangsu Soho E-Commerce Co. based in Nanjing")
A("para", "What sorts of goods from Jiangsu are catching on with shoppers in Central Asia?",
  "from baby and maternal goods to home furnishings", DC,
  "Products from Jiangsu — ranging from baby and maternal goods to home furnishings — are gaining popularity among Central Asian consumers")
A("num", "By how much did China's cross-border e-commerce imports from SCO countries grow in 2024?",
  "34 percent year on year", DC,
  "China's imports from SCO countries via cross-border e-commerce grew 34 percent year on year in 2024.")
A("entity", "What did the China-SCO Local Economic and Trade Cooperation Demonstration Area build to deal with cross-border settlement problems?",
  "a Silk Road e-commerce base", DC,
  "The China-SCO Local Economic and Trade Cooperation Demonstration Area has built a Silk Road e-commerce base to tackle issues such as cross-border settlement")
A("para", "What security tools let firms sign cross-border trade contracts online through Shanghai Electronic Certificate Authority?",
  "electronic signatures, data encryption and digital seals", DC,
  "Shanghai Electronic Certificate Authority Co. has enabled online signing of cross-border trade contracts through secure solutions — including electronic signatures, data encryption and digital seals")
A("multi", "How did Egypt's former head of the Suez Canal Economic Zone characterise the SCO?",
  "a technology-driven and inclusive platform that benefits all participants (Ahmed Darwish)", DC,
  "former chairman of the Suez Canal Economic Zone.\n\nThe SCO provides a technology-driven and inclusive platform that benefits all participants, Darwish said.")
A("num", "How many Luban Workshops has China set up in SCO countries?",
  "10", DC,
  "The country has established 10 Luban Workshops in SCO nations.")
A("para", "Which university in eastern Kazakhstan launched the country's first course on intelligent traffic systems with Chinese equipment?",
  "D. Serikbayev East Kazakhstan Technical University (Oskemen)", DC,
  "D. Serikbayev East Kazakhstan Technical University in Oskemen, Kazakhstan, introduced the country's first smart transportation course")
A("entity", "Who is Kazakhstan's Minister of Science and Higher Education?",
  "Sayasat Nurbek", DC,
  "Kazakhstan's Minister of Science and Higher Education Sayasat Nurbek")
A("para", "To patients in which countries does the Xi'an encephalopathy hospital provide remote traditional-medicine consultations?",
  "Russia, Kazakhstan, Kyrgyzstan, Uzbekistan and beyond", DC,
  "offers remote consultations with a distinctive Chinese medicine approach to patients in Russia, Kazakhstan, Kyrgyzstan, Uzbekistan and beyond")

# ---------------------------------------------------------------------------
# sco-digital-transformation-cgtn.txt  (paragraphs separated by single '\n')
# ---------------------------------------------------------------------------
A("para", "By which yardsticks is the SCO the biggest regional bloc in the world?",
  "geographic scope and population", CG,
  "the world’s largest regional organization in terms of geographic scope and population")
A("para", "Which urban-planning concept is the focus of the alliance the SCO created in June?",
  "City Information Modeling (CIM)", CG,
  "In June, the SCO established a pioneering alliance focused on City Information Modeling (CIM)")
A("entity", "What position does Li Gang hold?",
  "Deputy Secretary of the SCO Demonstration Zone Party Committee in Qingdao", CG,
  "Li Gang, Deputy Secretary of the SCO Demonstration Zone Party Committee in Qingdao City, Shandong Province")
A("para", "What technology does the Qingdao official plan to use to run cities in a precise, data-driven way?",
  "digital twins", CG,
  "“We will leverage technological innovations like digital twins to manage cities digitally, intelligently, and precisely,”")
A("num", "In which month was the alliance for industrial digitalization formed in Qingdao?",
  "May", CG,
  "In May, an alliance for industrial digitalization was formed in the city")
A("multi", "How many founding members did the Qingdao alliance for industrial digitalization have?",
  "83", CG,
  "an alliance for industrial digitalization was formed in the city to promote the adoption of artificial intelligence (AI) based on large data models among SCO members.\nThe initial 83 members of this alliance")
A("para", "Which member of the Qingdao alliance is known for connected-device services?",
  "Haier Cosmoplat", CG,
  "China Mobile, Huawei, and Haier Cosmoplat, who are leaders in internet services, data center solutions, and Internet of Things (IoT) services respectively")
A("num", "When was the Digital Technology Platform for SCO countries established?",
  "September 2023", CG,
  "the Digital Technology Platform (DTP) for SCO countries was established in September 2023")
A("para", "What have the big tech firms on the SCO's Digital Technology Platform promised to pass on to member states?",
  "their best practices in AI, big data, blockchain and cloud computing", CG,
  "They have committed to sharing their best practices in AI, big data, blockchain, and cloud computing with all SCO members")

# ---------------------------------------------------------------------------
# sco-digitalisation-2022-09-30.txt
# ---------------------------------------------------------------------------
A("num", "In what year did Uzbekistan adopt the Digital Uzbekistan-2030 strategy?",
  "2020", D22,
  "Uzbekistan adopted the \"Digital Uzbekistan-2030\" Strategy in 2020")
A("entity", "What digital policy document did Tajikistan adopt in 2020?",
  "the Concept of Digital Economy Development", D22,
  "Uzbekistan adopted the \"Digital Uzbekistan-2030\" Strategy in 2020, Tajikistan adopted the Concept of Digital Economy Development in the same year")
A("entity", "Which Chinese technology giants does the 2022 article describe as global competitors in Silicon Valley?",
  "Alibaba, Tencent and Huawei", D22,
  "Technology giants such as Alibaba, Tencent and Huawei are now global competitors in Silicon Valley.")
A("para", "Which firm dominates the IT market in Uzbekistan, Kazakhstan and Kyrgyzstan?",
  "Huawei", D22,
  "The market leader in the IT sector in the three countries of our region – Uzbekistan, Kazakhstan and Kyrgyzstan – today is Huawei.")
A("num", "What share of Kazakhstan's population uses devices and services built on Huawei equipment?",
  "over 60%", D22,
  "over 60% of the population in Kazakhstan (RK) use devices and services based on Huawei equipment")
A("num", "How many products and technologies has Huawei developed specifically for the Kazakh market?",
  "more than 300", D22,
  "The company develops and supplies to the domestic market more than 300 products and technologies designed specifically for the RoK.")
A("entity", "Which Uzbek mobile operator signed a memorandum with Huawei?",
  "UMS", D22,
  "Memorandums have been signed between Huawei and the Ministry of Information Technology Development, the mobile operator UMS")
A("multi", "How much could digitising SCO transport infrastructure cut freight costs and raise route capacity?",
  "costs down 30%, capacity up 40%", D22,
  "the transport infrastructure of the Shanghai Cooperation Organisation countries. Thanks to this project the cost of transportation can be reduced by 30% and the capacity of transport routes increased by 40%.")
A("num", "By how much did the number of cyber attacks worldwide rise in 2021 compared with 2020?",
  "50%", D22,
  "in 2021 the number of cyber attacks in the world increased by 50% compared to 2020")
A("para", "Which field was the top target of hackers in 2021?",
  "the education and research sector", D22,
  "In 2021, the education and research sector tops the list of the world's most attacked industries.")
A("num", "How long has international information security been on the SCO agenda, as of 2022?",
  "over 15 years", D22,
  "the topic of international information security, which entered the SCO agenda over 15 years ago")
A("num", "How many documents were signed at the 2021 SCO anniversary summit in Dushanbe?",
  "30", D22,
  "30 documents have been signed as a result of the 2021 anniversary summit in Dushanbe")
A("entity", "At whose initiative was the SCO Plan of Cooperation on International Information Security for 2022-2023 drafted?",
  "Uzbekistan and Russia", D22,
  "the SCO Plan of Cooperation on International Information Security for 2022-2023, drafted at the initiative of Uzbekistan and Russia")
A("para", "Which multi-year programme adopted at the Samarkand summit is expected to deepen partnership among SCO members?",
  "the Comprehensive Program for Implementation of the Treaty on Long-term Neighbourliness, Friendship and Cooperation for 2023-2027", D22,
  "the adoption at the Samarkand summit of the Comprehensive Program for Implementation of the Treaty on Long-term Neighbourliness, Friendship and Cooperation for 2023-2027")

# ---------------------------------------------------------------------------
# Unanswerable: on-topic but not answered anywhere in the corpus
# ---------------------------------------------------------------------------
U("unans", "In which year was the Shanghai Cooperation Organization founded?",
  ["2001", "founded in", "establishment of the SCO", "since its"])
U("unans", "Who is the current Secretary-General of the SCO?",
  ["SCO Secretary-General", "Secretary-General of the SCO", "Secretary General"])
U("unans", "How many full member states does the SCO have?",
  ["nine member", "ten member", "eight member", "9 member", "10 member", "member states:"])
U("unans", "How much did the China-Kyrgyzstan-Uzbekistan cross-border fiber-optic cable cost to build?",
  ["cable cost", "invested $", "million to", "cost of the cable"])
U("unans", "How long is the 2Africa submarine cable in kilometres?",
  [" km ", "kilomet"])
U("unans", "How many parameters do CMRI's Jiutian large models have?",
  ["parameter"])
U("unans", "When is the AI data center in Neom expected to start operating?",
  ["become operational", "operational by", "start operat", "come online", "completed in"])
U("unans", "What share of Tajikistan's electricity is generated by hydropower?",
  ["electricity", "hydropower accounts", "% of its power"])
U("unans", "What is the name of India's national AI strategy?",
  ["IndiaAI", "AI for All", "India's national"])
U("unans", "How many 5G base stations has Uzbekistan built?",
  ["base station"])
U("unans", "What was the total trade volume between China and SCO countries in 2024?",
  ["trade volume", "trade between China and SCO", "trillion dollars", "trade reached"])
U("unans", "Who is the chief executive of Jiangsu Soho E-Commerce Co.?",
  ["CEO", "chief executive", "president of Jiangsu", "general manager of Jiangsu Soho E-Commerce Co. is"])
U("unans", "When was the China-SCO Big Data Cooperation Center founded?",
  ["Center was established", "Center was founded", "center was set up", "launched in 20"])
U("unans", "How much does a Deepinfar pool-cleaning robot cost?",
  ["price", "yuan per", "dollars", "tenge"])
U("unans", "How many employees does the China Mobile Research Institute have?",
  ["employees", "staff of", "researchers at CMRI", "headcount"])
U("unans", "What role does Iran play in the SCO's digital cooperation?",
  ["Iran"])
U("unans", "What was the budget of the Digital Kazakhstan programme?",
  ["budget", "tenge", "allocated"])
U("unans", "What is the total length of fiber-optic networks across the Tianshan Mountains in Xinjiang?",
  [" km ", "kilomet", "miles"])
U("unans", "How many Chinese students study AI at universities in SCO member states?",
  ["students study", "Chinese students", "international students"])
# Off-topic
U("off", "Who won the 2023 Tour de France?",
  ["Tour de France", "cycling"])
U("off", "How long should sourdough bread be baked at 230 degrees Celsius?",
  ["sourdough", "bake", "Celsius"])
U("off", "How many players are on the field for each side in a cricket match?",
  ["cricket", "wicket"])


# ---------------------------------------------------------------------------
def load(name):
    with open(os.path.join(CORPUS, name), "rb") as fh:
        return fh.read().decode("utf-8")


def find_all(text, quote):
    out, i = [], text.find(quote)
    while i != -1:
        out.append(i)
        i = text.find(quote, i + 1)
    return out


def build():
    names = sorted(n for n in os.listdir(CORPUS) if n.endswith(".txt"))
    texts = {n: load(n) for n in names}
    alltext = "\n".join(texts.values()).lower()
    errors, records = [], []
    for k, it in enumerate(ITEMS, 1):
        iid = "gold-%03d" % k
        evidence = []
        for (fname, quote, occ) in it["ev"]:
            if fname not in texts:
                errors.append("%s: unknown file %s" % (iid, fname))
                continue
            text = texts[fname]
            hits = find_all(text, quote)
            if not hits:
                errors.append("%s: quote not found in %s: %r" % (iid, fname, quote[:80]))
                continue
            if occ is None:
                if len(hits) > 1:
                    errors.append("%s: quote ambiguous (%d hits) in %s: %r"
                                  % (iid, len(hits), fname, quote[:80]))
                    continue
                start = hits[0]
            else:
                if occ >= len(hits):
                    errors.append("%s: occ %d out of range (%d hits)" % (iid, occ, len(hits)))
                    continue
                start = hits[occ]
            end = start + len(quote)
            evidence.append({
                "file": "corpus/" + fname,
                "start": start,
                "end": end,
                "line_start": text.count("\n", 0, start) + 1,
                "line_end": text.count("\n", 0, end - 1) + 1,
                "quote": quote,
            })
        if it["answerable"] and not evidence:
            errors.append("%s: answerable item without evidence" % iid)
        if not it["answerable"]:
            for s in it.get("absent", []):
                if s.lower() in alltext:
                    errors.append("%s: 'absent' string %r occurs in corpus" % (iid, s))
        records.append({
            "id": iid,
            "question": it["question"],
            "answerable": it["answerable"],
            "answer": it["answer"],
            "evidence": evidence,
        })
    if errors:
        for e in errors:
            print("ERROR", e, file=sys.stderr)
        sys.exit("make_gold: %d error(s); gold.jsonl NOT written" % len(errors))
    return records, texts


def verify(records, texts):
    """Re-read the written file and check every invariant; also compare with dev."""
    seen_ids, seen_q = set(), set()
    with open(OUT, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == len(records)
    for r, it in zip(rows, ITEMS):
        assert list(r) == ["id", "question", "answerable", "answer", "evidence"], r["id"]
        assert r["id"] not in seen_ids, r["id"]
        seen_ids.add(r["id"])
        q = " ".join(r["question"].lower().split())
        assert q not in seen_q, r["id"]
        seen_q.add(q)
        if r["answerable"]:
            assert r["answer"] and r["evidence"], r["id"]
        else:
            assert r["answer"] is None and r["evidence"] == [], r["id"]
        for e, (_, _, occ) in zip(r["evidence"], it["ev"]):
            assert list(e) == ["file", "start", "end", "line_start", "line_end", "quote"]
            t = texts[e["file"].split("/", 1)[1]]
            assert t[e["start"]:e["end"]] == e["quote"], r["id"]
            assert e["line_start"] == t.count("\n", 0, e["start"]) + 1, r["id"]
            assert e["line_end"] == t.count("\n", 0, e["end"] - 1) + 1, r["id"]
            if occ is None:
                assert len(find_all(t, e["quote"])) == 1, r["id"]
    # dev-set comparison: no duplicated question; report span overlaps for review
    if os.path.exists(DEV):
        with open(DEV, encoding="utf-8") as fh:
            dev = [json.loads(line) for line in fh]
        devq = {" ".join(d["question"].lower().split()) for d in dev}
        dup = [r["id"] for r in rows if " ".join(r["question"].lower().split()) in devq]
        assert not dup, "questions duplicated from dev: %s" % dup
        for r in rows:
            for e in r["evidence"]:
                for d in dev:
                    for de in d["evidence"]:
                        if de["file"] != e["file"]:
                            continue
                        ov = min(e["end"], de["end"]) - max(e["start"], de["start"])
                        if ov > 0:
                            print("note: %s evidence overlaps %s by %d chars (different question)"
                                  % (r["id"], d["id"], ov))
    return rows


def summary(rows):
    from collections import Counter
    per_file, styles = Counter(), Counter()
    for r, it in zip(rows, ITEMS):
        styles[it["style"]] += 1
        for e in r["evidence"][:1]:
            per_file[e["file"]] += 1
    n_ans = sum(r["answerable"] for r in rows)
    print("items: %d  answerable: %d  unanswerable: %d" % (len(rows), n_ans, len(rows) - n_ans))
    for f, c in sorted(per_file.items()):
        print("  %-48s %d" % (f, c))
    print("styles:", dict(styles))
    lens = [len(e["quote"]) for r in rows for e in r["evidence"]]
    print("quote length: min %d  median %d  max %d"
          % (min(lens), sorted(lens)[len(lens) // 2], max(lens)))


def main():
    records, texts = build()
    with open(OUT, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    rows = verify(records, texts)
    summary(rows)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
